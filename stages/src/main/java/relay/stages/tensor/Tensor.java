package relay.stages.tensor;

import java.util.Arrays;
import relay.stages.memory.Category;

/**
 * A tensor in device memory: a contiguous, row-major range of one allocation, stored as its {@link DType}
 * (float32 or bfloat16; kernels compute in float32 either way).
 *
 * <p>The tensor that made an allocation owns it and frees it with {@link #close()}; views share
 * the allocation and own nothing. Memory is never left to the garbage collector, so what the
 * {@link relay.stages.memory.MemoryLedger} shows is what is held.
 */
public final class Tensor implements AutoCloseable {
    private final Device device;
    private final Category category;
    private final DType dtype;
    private final DeviceMemory memory;
    private final long offset;
    private final int[] shape;
    private final long size;
    private final boolean owner;

    Tensor(Device device, Category category, DType dtype, DeviceMemory memory, long offset, int[] shape, boolean owner) {
        this.device = device;
        this.category = category;
        this.dtype = dtype;
        this.memory = memory;
        this.offset = offset;
        this.shape = shape.clone();
        this.size = sizeOf(shape);
        this.owner = owner;
    }

    /** Wraps a fresh allocation; only devices call this. */
    public static Tensor owning(Device device, Category category, DType dtype, DeviceMemory memory, int[] shape) {
        return new Tensor(device, category, dtype, memory, 0, shape, true);
    }

    public static long sizeOf(int... shape) {
        long n = 1;
        for (int d : shape) {
            if (d < 0) throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    public Device device() {
        return device;
    }

    public Category category() {
        return category;
    }

    public DType dtype() {
        return dtype;
    }

    /** The allocation behind this tensor; throws if it was freed, so use-after-free fails loudly. */
    public DeviceMemory memory() {
        if (memory.isFreed()) throw new IllegalStateException("tensor " + describe() + " used after free");
        return memory;
    }

    /** Offset of element 0 within the allocation, in elements. */
    public long offset() {
        return offset;
    }

    public int[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    public int dim(int i) {
        return shape[i < 0 ? shape.length + i : i];
    }

    public long size() {
        return size;
    }

    public long bytes() {
        return size * dtype.bytes();
    }

    /** Rows of the tensor seen as a matrix whose last dimension is the row length. */
    public int rows() {
        return (int) (size / cols());
    }

    public int cols() {
        return shape.length == 0 ? 1 : shape[shape.length - 1];
    }

    /** The same elements under another shape of equal size. */
    public Tensor view(int... newShape) {
        if (sizeOf(newShape) != size) {
            throw new IllegalArgumentException("cannot view " + describe() + " as " + Arrays.toString(newShape));
        }
        return new Tensor(device, category, dtype, memory, offset, newShape, false);
    }

    /** Rows [from, to) of the tensor seen as a matrix. */
    public Tensor rowRange(int from, int to) {
        int c = cols();
        if (from < 0 || to > rows() || from > to) {
            throw new IndexOutOfBoundsException("rows [" + from + ", " + to + ") of " + describe());
        }
        return new Tensor(device, category, dtype, memory, offset + (long) from * c, new int[] {to - from, c}, false);
    }

    public boolean isOwner() {
        return owner;
    }

    public boolean isFreed() {
        return memory.isFreed();
    }

    /** Frees the allocation. Only the owning tensor may; a second free is an error. */
    @Override
    public void close() {
        if (!owner) throw new IllegalStateException("a view does not own its memory: " + describe());
        device.free(this);
    }

    public float[] toArray() {
        return device.download(this);
    }

    public Tensor copyFrom(float[] values) {
        device.upload(values, this);
        return this;
    }

    /** Values drawn in row-major order, at most this many held on the JVM heap at once. */
    private static final int FILL_SLICE = 1 << 20;

    /**
     * Sets every element from {@code next}, in row-major order, a slice of rows at a time: a large tensor never
     * passes through the JVM heap whole (a heap grown for it stays committed, and resident, for the rest of the run).
     */
    public Tensor fillFrom(java.util.function.DoubleSupplier next) {
        Tensor rows = rank() == 1 ? view(1, Math.toIntExact(size)) : this;
        int perSlice = Math.max(1, FILL_SLICE / rows.cols());
        java.nio.FloatBuffer slice = java.nio.FloatBuffer.allocate(perSlice * rows.cols());
        for (int r0 = 0; r0 < rows.rows(); r0 += perSlice) {
            Tensor part = rows.rowRange(r0, Math.min(rows.rows(), r0 + perSlice));
            slice.clear();
            for (long i = 0; i < part.size(); i++) slice.put((float) next.getAsDouble());
            slice.flip();
            device.write(slice, part);
        }
        return this;
    }

    public String describe() {
        return category.key() + (dtype == DType.F32 ? "" : "<" + dtype.key() + ">") + Arrays.toString(shape) + "@" + device.name();
    }

    @Override
    public String toString() {
        return "Tensor " + describe();
    }
}
