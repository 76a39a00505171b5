package relay.stages.tensor.cpu;

import java.nio.FloatBuffer;
import java.util.Arrays;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.openblas.global.openblas_nolapack;
import relay.stages.memory.Category;
import relay.stages.memory.MemoryLedger;
import relay.stages.tensor.Bf16;
import relay.stages.tensor.DType;
import relay.stages.tensor.Device;
import relay.stages.tensor.KernelClock;
import relay.stages.tensor.Mat;
import relay.stages.tensor.Tensor;

/**
 * The CPU backend: tensors in native memory, matrix products through OpenBLAS, every other kernel in
 * plain Java loops over direct buffers, split over the device's own threads. Kernels compute in float32; bfloat16
 * tensors are widened into workspace before a kernel and the ones it writes rounded back after ({@link #staged}).
 * A product of two bfloat16 operands runs through oneDNN where the CPU multiplies bfloat16 natively
 * ({@link NativeBf16Products}); elsewhere, and where one operand is float32, bfloat16 operands are widened into
 * workspace in panels (the OpenBLAS build here has no bfloat16 GEMM).
 *
 * <p>OpenBLAS keeps one process-wide thread count, so it is held at one and a device splits each matrix product over
 * its own threads itself ({@link #tiled}), as it does oneDNN's: devices of one process (pipeline stages) each compute with their own count.
 */
public final class CpuDevice implements Device {
    private static final int ROW_MAJOR = openblas_nolapack.CblasRowMajor;
    private static final int NO_TRANS = openblas_nolapack.CblasNoTrans;
    private static final int TRANS = openblas_nolapack.CblasTrans;

    static {
        org.bytedeco.openblas.presets.openblas_nolapack.blas_set_num_threads(1);
    }

    /** The alignment of memory this device takes over from elsewhere, so BLAS reads whole vectors. */
    private static final int ALIGN = 64;

    private final String name;
    private final int threads;
    /**
     * Whether products of two bfloat16 operands may run natively ({@link NativeBf16Products}, asked at the first such
     * product: a float32 run never loads oneDNN) rather than widened.
     */
    private final boolean nativeBf16;
    private final MemoryLedger memory = new MemoryLedger();
    private final RowParallel parallel;
    /** Memory for the run (weights, optimizer state) and memory for a step, kept apart (see {@link Category#stepScoped}). */
    private final Arena held, step;

    /**
     * Rows or columns of C per cut of a matrix product: enough tiles for a device's threads to share, each large enough
     * to run near BLAS's peak (128 measured faster than 256 on a GPT-2 124M step, 2026-12-05).
     */
    private static final int TILE = 128;
    /** The most tiles a product is cut into: enough for 16 threads to share evenly. */
    private static final int MAX_TILES = 16;

    /** Elements of one bfloat16 panel widened for a matrix product (16 MiB as float32). */
    private static final long PANEL = 4L << 20;

    /** The device its tensors name: this one, or the kernel-timing view of it ({@link #timedBy}). */
    private Device face = this;

    /** A device whose arenas keep up to 4 GiB of free memory each for reuse. */
    public CpuDevice(String name, int threads) {
        this(name, threads, 4L << 30);
    }

    public CpuDevice(String name, int threads, long freeLimitBytes) {
        this(name, threads, freeLimitBytes, true);
    }

    /** A device that widens bfloat16 operands even where they could be multiplied natively (to compare the two). */
    static CpuDevice widening(String name, int threads) {
        return new CpuDevice(name, threads, 4L << 30, false);
    }

    private CpuDevice(String name, int threads, long freeLimitBytes, boolean nativeBf16) {
        if (threads < 1) throw new IllegalArgumentException("device " + name + ": threads must be ≥ 1, got " + threads);
        this.name = name;
        this.threads = threads;
        this.nativeBf16 = nativeBf16;
        this.parallel = new RowParallel(threads, name);
        this.held = new Arena(name, freeLimitBytes);
        this.step = new Arena(name, freeLimitBytes);
    }

    /** A CPU device using every core of the machine. */
    public static CpuDevice allCores() {
        return new CpuDevice("cpu0", Runtime.getRuntime().availableProcessors());
    }

    /**
     * This device seen through a kernel clock: every kernel called on the returned device, or on a tensor made
     * by it, adds its time to its family's. Call it before the device makes any tensor.
     */
    public Device timedBy(KernelClock clock) {
        if (memory.currentTotal() != 0) throw new IllegalStateException("device " + name + " already holds tensors");
        face = clock.view(this);
        return face;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public MemoryLedger memory() {
        return memory;
    }

    @Override
    public int threads() {
        return threads;
    }

    @Override
    public Tensor allocate(Category category, DType dtype, int... shape) {
        return allocate(category, dtype, true, shape);
    }

    @Override
    public Tensor empty(Category category, DType dtype, int... shape) {
        return allocate(category, dtype, false, shape);
    }

    private Tensor allocate(Category category, DType dtype, boolean zero, int... shape) {
        long bytes = Tensor.sizeOf(shape) * dtype.bytes();
        CpuMemory m = CpuMemory.allocate(bytes, zero, category.stepScoped() ? step : held, name);
        memory.allocated(category, bytes);
        return Tensor.owning(face, category, dtype, m, shape);
    }

    /** Bytes this device holds from the system: its tensors', and free memory kept for the next allocations. */
    public long reservedBytes() {
        return held.reservedBytes() + step.reservedBytes();
    }

    /** Of those, the bytes no tensor holds (so not in the ledger). */
    public long freeBytes() {
        return held.freeBytes() + step.freeBytes();
    }

    @Override
    public void free(Tensor owner) {
        if (!owner.isOwner()) throw new IllegalStateException("not an owning tensor: " + owner.describe());
        owner.memory().free();
        memory.released(owner.category(), owner.bytes());
    }

    /** A float32 tensor's values; kernels take no other (the staging view widens bfloat16 ones before they run). */
    private FloatBuffer buf(Tensor t) {
        if (t.dtype() != DType.F32) throw new IllegalArgumentException("a float32 kernel was given " + t.describe());
        return mem(t).floats();
    }

    private java.nio.ShortBuffer shorts(Tensor t) {
        return mem(t).shorts();
    }

    private static int off(Tensor t) {
        return (int) t.offset();
    }

    private static void sameSize(Tensor a, Tensor b) {
        if (a.size() != b.size()) {
            throw new IllegalArgumentException("size mismatch: " + a.describe() + " vs " + b.describe());
        }
    }

    @Override
    public void upload(float[] src, Tensor dst) {
        if (src.length != dst.size()) {
            throw new IllegalArgumentException(src.length + " values for " + dst.describe());
        }
        write(FloatBuffer.wrap(src), dst);
    }

    @Override
    public float[] download(Tensor src) {
        float[] out = new float[Math.toIntExact(src.size())];
        read(src, FloatBuffer.wrap(out));
        return out;
    }

    /** Native memory of this process: in place, where the machine stores floats little-endian (every x86 and ARM one in use). */
    @Override
    public java.nio.ByteBuffer view(Tensor t) {
        if (java.nio.ByteOrder.nativeOrder() != java.nio.ByteOrder.LITTLE_ENDIAN) return null;
        mem(t);
        // A pointer's limit of 0 reads as "up to its capacity": an empty tensor's view is made here.
        if (t.size() == 0) return java.nio.ByteBuffer.allocateDirect(0);
        return mem(t).bytes(t.offset() * t.dtype().bytes(), t.bytes()).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    }

    /** Received bytes become the tensor's memory where they sit, when aligned for BLAS and in the machine's byte order. */
    @Override
    public Tensor adopt(java.nio.ByteBuffer values, Category category, DType dtype, int[] shape, Runnable giveBack) {
        long bytes = Tensor.sizeOf(shape) * dtype.bytes();
        if (!values.isDirect() || values.remaining() != bytes || java.nio.ByteOrder.nativeOrder() != java.nio.ByteOrder.LITTLE_ENDIAN
                || new Pointer(values).address() % ALIGN != 0) {
            return null;
        }
        CpuMemory m = CpuMemory.lent(values.slice(), giveBack);
        memory.allocated(category, bytes);
        return Tensor.owning(face, category, dtype, m, shape);
    }

    @Override
    public void read(Tensor src, FloatBuffer dst) {
        if (src.dtype() == DType.BF16) {
            java.nio.ShortBuffer b = shorts(src);
            int o = off(src), p = dst.position();
            for (int i = 0; i < src.size(); i++) dst.put(p + i, Bf16.widen(b.get(o + i)));
            dst.position(p + (int) src.size());
            return;
        }
        FloatBuffer b = buf(src).duplicate();
        b.position(off(src)).limit(off(src) + Math.toIntExact(src.size()));
        dst.put(b);
    }

    @Override
    public void write(FloatBuffer src, Tensor dst) {
        int n = Math.toIntExact(dst.size());
        if (src.remaining() < n) throw new IllegalArgumentException(src.remaining() + " values for " + dst.describe());
        if (dst.dtype() == DType.BF16) {
            java.nio.ShortBuffer b = shorts(dst);
            int o = off(dst), p = src.position();
            for (int i = 0; i < n; i++) b.put(o + i, Bf16.round(src.get(p + i)));
        } else {
            FloatBuffer s = src.duplicate();
            s.limit(s.position() + n);
            buf(dst).duplicate().position(off(dst)).put(s);
        }
        src.position(src.position() + n);
    }

    /** The source may sit on another CPU device: both are native memory of this process. */
    @Override
    public void copy(Tensor src, Tensor dst) {
        sameSize(src, dst);
        if (!(src.memory() instanceof CpuMemory from)) throw new IllegalArgumentException("cannot copy from " + src.describe());
        CpuMemory to = mem(dst);
        if (src.dtype() == dst.dtype()) {
            int b = src.dtype().bytes();
            Pointer.memcpy(to.byteAt(dst.offset() * b), from.byteAt(src.offset() * b), src.bytes());
        } else if (src.dtype() == DType.F32) {
            FloatBuffer s = from.floats();
            java.nio.ShortBuffer d = to.shorts();
            int so = off(src), o = off(dst);
            parallel.forRows((int) src.size(), 2, (a, z) -> {
                for (int i = a; i < z; i++) d.put(o + i, Bf16.round(s.get(so + i)));
            });
        } else {
            java.nio.ShortBuffer s = from.shorts();
            FloatBuffer d = to.floats();
            int so = off(src), o = off(dst);
            parallel.forRows((int) src.size(), 2, (a, z) -> {
                for (int i = a; i < z; i++) d.put(o + i, Bf16.widen(s.get(so + i)));
            });
        }
    }

    @Override
    public void roundStochastic(Tensor src, Tensor dst, long key) {
        sameSize(src, dst);
        if (dst.dtype() != DType.BF16) throw new IllegalArgumentException("stochastic rounding into " + dst.describe());
        FloatBuffer s = buf(src);
        java.nio.ShortBuffer d = shorts(dst);
        int so = off(src), o = off(dst);
        parallel.forRows((int) src.size(), 4, (a, z) -> {
            for (int i = a; i < z; i++) d.put(o + i, Bf16.stochastic(s.get(so + i), Bf16.randomBits(key, i)));
        });
    }

    @Override
    public void fill(Tensor t, float value) {
        if (staged(0b1, ts -> fill(ts[0], value), t)) return;
        FloatBuffer b = buf(t);
        int o = off(t);
        for (long i = 0; i < t.size(); i++) b.put(o + (int) i, value);
    }

    @Override
    public void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                     Mat a, Mat b, float beta, Mat c) {
        if (bf16(a) && bf16(b) && nativeBf16 && NativeBf16Products.available()) {
            tiled(transA, transB, m, n, k, alpha, a, b, beta, c, this::nativeProduct);
        } else if (bf16(c) && (long) m * n > PANEL && m > 1) {
            int h = m / 2;
            gemm(transA, transB, h, n, k, alpha, block(a, transA, 0, 0), b, beta, c);
            gemm(transA, transB, m - h, n, k, alpha, block(a, transA, h, 0), b, beta, block(c, false, h, 0));
        } else if (bf16(c)) {
            try (Tensor c32 = widened(c, false, m, n, beta != 0)) {
                gemm(transA, transB, m, n, k, alpha, a, b, beta, Mat.of(c32));
                storeRounded(c32, c);
            }
        } else if (bf16(a) && (long) m * k > PANEL && (transA ? k : m) > 1) {
            if (transA) splitK(transA, transB, m, n, k, alpha, a, b, beta, c);
            else {
                int h = m / 2;
                gemm(transA, transB, h, n, k, alpha, a, b, beta, c);
                gemm(transA, transB, m - h, n, k, alpha, block(a, transA, h, 0), b, beta, block(c, false, h, 0));
            }
        } else if (bf16(b) && (long) k * n > PANEL && (transB ? n : k) > 1) {
            if (!transB) splitK(transA, transB, m, n, k, alpha, a, b, beta, c);
            else {
                int h = n / 2;
                gemm(transA, transB, m, h, k, alpha, a, b, beta, c);
                gemm(transA, transB, m, n - h, k, alpha, a, block(b, transB, 0, h), beta, block(c, false, 0, h));
            }
        } else if (bf16(a) || bf16(b)) {
            try (Tensor a32 = bf16(a) ? widened(a, transA, m, k, true) : null; Tensor b32 = bf16(b) ? widened(b, transB, k, n, true) : null) {
                tiled(transA, transB, m, n, k, alpha, a32 == null ? a : Mat.of(a32), b32 == null ? b : Mat.of(b32), beta, c,
                        this::blasSgemm);
            }
        } else {
            tiled(transA, transB, m, n, k, alpha, a, b, beta, c, this::blasSgemm);
        }
    }

    /** C = alpha·op(A)·op(B) + beta·C over k in two halves, the second adding to the first. */
    private void splitK(boolean transA, boolean transB, int m, int n, int k, float alpha, Mat a, Mat b, float beta, Mat c) {
        int h = k / 2;
        gemm(transA, transB, m, n, h, alpha, a, b, beta, c);
        gemm(transA, transB, m, n, k - h, alpha, block(a, transA, 0, h), block(b, transB, h, 0), 1f, c);
    }

    /** One single-threaded matrix product: BLAS's sgemm, or oneDNN's bfloat16 matmul. */
    private interface Kernel {
        void multiply(boolean transA, boolean transB, int m, int n, int k, float alpha, Mat a, Mat b, float beta, Mat c);
    }

    /**
     * One product on this device's own threads: C is cut along its longer side into tiles of {@link #TILE}
     * rows or columns, each a single-threaded kernel call, and the device's threads share the tiles (the kernel runs one
     * thread per call, so a device computes with its threads and no more, whatever other devices of the process use).
     * A kernel may sum an element differently in calls of other shapes, so the tiles are fixed by the product's shape
     * alone, never by the thread count: a run is bit-identical on any number of threads.
     */
    private void tiled(boolean transA, boolean transB, int m, int n, int k, float alpha, Mat a, Mat b, float beta, Mat c,
                       Kernel kernel) {
        if (m >= n) {
            int tile = tile(m);
            parallel.forRows((m + tile - 1) / tile, (long) tile * n * k, (from, to) -> {
                for (int t = from; t < to; t++) {
                    int r0 = t * tile, r1 = Math.min(m, r0 + tile);
                    kernel.multiply(transA, transB, r1 - r0, n, k, alpha, block(a, transA, r0, 0), b, beta, block(c, false, r0, 0));
                }
            });
        } else {
            int tile = tile(n);
            parallel.forRows((n + tile - 1) / tile, (long) tile * m * k, (from, to) -> {
                for (int t = from; t < to; t++) {
                    int c0 = t * tile, c1 = Math.min(n, c0 + tile);
                    kernel.multiply(transA, transB, m, c1 - c0, k, alpha, a, block(b, transB, 0, c0), beta, block(c, false, 0, c0));
                }
            });
        }
    }

    /**
     * Rows (or columns) of C per tile when C has {@code length} of them: {@link #TILE}, or more where that would make
     * more than {@link #MAX_TILES} tiles — every tile packs the other operand anew (GPT-2's head over 50,257 words
     * would pack it 393 times).
     */
    private static int tile(int length) {
        int perTile = (length + MAX_TILES - 1) / MAX_TILES;
        return Math.max(TILE, (perTile + TILE - 1) / TILE * TILE);
    }

    /**
     * Each product whole, on one of the device's threads, those into the same C one after another in their order: a
     * product of attention's is too small to cut well, and many run side by side instead. Not cut, every product is
     * computed the same on any thread count. A batch that is neither all float32 nor of bfloat16 pairs oneDNN multiplies
     * goes through {@link #gemm} one product at a time.
     */
    @Override
    public void gemmBatch(boolean transA, boolean transB, int m, int n, int k, float alpha,
                          java.util.List<Mat> a, java.util.List<Mat> b, float beta, java.util.List<Mat> c) {
        if (a.size() != c.size() || b.size() != c.size()) {
            throw new IllegalArgumentException(a.size() + ", " + b.size() + " and " + c.size() + " matrices in one batch");
        }
        boolean f32 = true, bothBf16 = true;
        for (int i = 0; i < c.size(); i++) {
            f32 &= !bf16(a.get(i)) && !bf16(b.get(i)) && !bf16(c.get(i));
            bothBf16 &= bf16(a.get(i)) && bf16(b.get(i));
        }
        bothBf16 &= nativeBf16 && NativeBf16Products.available();
        if (!f32 && !bothBf16) {
            Device.super.gemmBatch(transA, transB, m, n, k, alpha, a, b, beta, c);
            return;
        }
        Kernel kernel = f32 ? this::blasSgemm : this::nativeProduct;
        java.util.Map<OutputAt, java.util.List<Integer>> byOutput = new java.util.LinkedHashMap<>();
        for (int i = 0; i < c.size(); i++) {
            Mat ci = c.get(i);
            byOutput.computeIfAbsent(new OutputAt(ci.tensor().memory(), ci.tensor().offset() + ci.offset()), o -> new java.util.ArrayList<>()).add(i);
        }
        java.util.List<java.util.List<Integer>> chains = java.util.List.copyOf(byOutput.values());
        parallel.forRows(chains.size(), (long) m * n * k * c.size() / chains.size(), (from, to) -> {
            for (int ch = from; ch < to; ch++) {
                for (int i : chains.get(ch)) kernel.multiply(transA, transB, m, n, k, alpha, a.get(i), b.get(i), beta, c.get(i));
            }
        });
    }

    /** Where a product's output starts: products into the same one run in order. */
    private record OutputAt(relay.stages.tensor.DeviceMemory memory, long offset) {}

    private void blasSgemm(boolean transA, boolean transB, int m, int n, int k, float alpha, Mat a, Mat b, float beta, Mat c) {
        CpuMemory ma = floatMem(a.tensor()), mb = floatMem(b.tensor()), mc = floatMem(c.tensor());
        openblas_nolapack.cblas_sgemm(ROW_MAJOR, transA ? TRANS : NO_TRANS, transB ? TRANS : NO_TRANS,
                m, n, k, alpha,
                ma.floatAt(a.tensor().offset() + a.offset()), a.ld(),
                mb.floatAt(b.tensor().offset() + b.offset()), b.ld(), beta,
                mc.floatAt(c.tensor().offset() + c.offset()), c.ld());
    }

    private void nativeProduct(boolean transA, boolean transB, int m, int n, int k, float alpha, Mat a, Mat b, float beta, Mat c) {
        NativeBf16Products.Product p = NativeBf16Products.product(new NativeBf16Products.Shape(transA, transB, m, n, k, a.ld(),
                b.ld(), c.ld(), alpha, beta, bf16(c)));
        long bytes = p.scratchBytes();
        try (Tensor scratch = bytes == 0 ? null : empty(Category.WORKSPACE, DType.F32, (int) ((bytes + 3) / 4))) {
            p.multiply(at(a), at(b), at(c), scratch == null ? null : at(Mat.of(scratch)));
        }
    }

    /** Where element (0, 0) of a matrix is in memory, whatever its element type. */
    private Pointer at(Mat x) {
        Tensor t = x.tensor();
        return mem(t).byteAt((t.offset() + x.offset()) * t.dtype().bytes());
    }

    /** What a product of two bfloat16 operands runs as on this machine, and why (for benchmarks' tables). */
    public static String bf16Products() {
        return NativeBf16Products.describe();
    }

    private static boolean bf16(Mat x) {
        return x.tensor().dtype() == DType.BF16;
    }

    /** The block of op(X) whose element (0, 0) is op(X)'s (i, j). */
    private static Mat block(Mat x, boolean trans, int i, int j) {
        long at = trans ? (long) j * x.ld() + i : (long) i * x.ld() + j;
        return new Mat(x.tensor(), x.offset() + at, x.ld());
    }

    /** The rows × cols block of op(X) (bfloat16) as a float32 workspace tensor laid out as X stores it; zeros unless {@code fill}. */
    private Tensor widened(Mat x, boolean trans, int rows, int cols, boolean fill) {
        int r = trans ? cols : rows, c = trans ? rows : cols;
        Tensor out = empty(Category.WORKSPACE, DType.F32, r, c);
        if (!fill) return out;
        java.nio.ShortBuffer s = shorts(x.tensor());
        FloatBuffer d = buf(out);
        long base = x.tensor().offset() + x.offset();
        int o = off(out), ld = x.ld();
        parallel.forRows(r, c, (from, to) -> {
            for (int i = from; i < to; i++) {
                int src = (int) (base + (long) i * ld), dst = o + i * c;
                for (int j = 0; j < c; j++) d.put(dst + j, Bf16.widen(s.get(src + j)));
            }
        });
        return out;
    }

    /** Rounds a widened block (float32, dense) back into the bfloat16 block it came from. */
    private void storeRounded(Tensor block, Mat x) {
        java.nio.ShortBuffer d = shorts(x.tensor());
        FloatBuffer s = buf(block);
        long base = x.tensor().offset() + x.offset();
        int o = off(block), ld = x.ld(), c = block.cols();
        parallel.forRows(block.rows(), c, (from, to) -> {
            for (int i = from; i < to; i++) {
                int dst = (int) (base + (long) i * ld), src = o + i * c;
                for (int j = 0; j < c; j++) d.put(dst + j, Bf16.round(s.get(src + j)));
            }
        });
    }

    /**
     * Runs a float32 kernel on tensors of which some are bfloat16: those are widened into workspace (counted), the
     * kernel runs on the copies, and the copies of the tensors it writes (bit i of {@code writes} for the i-th) are
     * rounded back to nearest. Returns false, doing nothing, when every tensor is float32 or null: the caller then
     * runs the kernel itself, exactly as in a float32 run. An update's write-back is not this: the optimizers
     * update a float32 copy of a bfloat16 weight and round it back stochastically ({@link #roundStochastic}).
     */
    private boolean staged(int writes, java.util.function.Consumer<Tensor[]> kernel, Tensor... tensors) {
        boolean any = false;
        for (Tensor t : tensors) any |= t != null && t.dtype() == DType.BF16;
        if (!any) return false;
        Tensor[] copies = tensors.clone();
        try {
            for (int i = 0; i < tensors.length; i++) {
                if (tensors[i] == null || tensors[i].dtype() != DType.BF16) continue;
                copies[i] = empty(Category.WORKSPACE, DType.F32, tensors[i].shape());
                copy(tensors[i], copies[i]);
            }
            kernel.accept(copies);
            for (int i = 0; i < tensors.length; i++) {
                if ((writes >> i & 1) != 0 && copies[i] != tensors[i]) copy(copies[i], tensors[i]);
            }
        } finally {
            for (int i = 0; i < tensors.length; i++) if (copies[i] != tensors[i] && copies[i] != null) copies[i].close();
        }
        return true;
    }

    private CpuMemory mem(Tensor t) {
        if (t.device() != face) {
            throw new IllegalArgumentException("tensor " + t.describe() + " is not on device " + name);
        }
        return (CpuMemory) t.memory();
    }

    private CpuMemory floatMem(Tensor t) {
        buf(t);
        return mem(t);
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        if (staged(0b100, t -> add(t[0], t[1], t[2]), a, b, out)) return;
        sameSize(a, b);
        sameSize(a, out);
        FloatBuffer x = buf(a), y = buf(b), z = buf(out);
        parallel.forRows((int) a.size(), 1, (from, to) -> PointwiseKernels.axpby(1f, x, off(a), 1f, y, off(b), z, off(out), from, to));
    }

    @Override
    public void axpy(float alpha, Tensor x, Tensor y) {
        if (staged(0b10, t -> axpy(alpha, t[0], t[1]), x, y)) return;
        sameSize(x, y);
        FloatBuffer xb = buf(x), yb = buf(y);
        parallel.forRows((int) x.size(), 1, (from, to) -> PointwiseKernels.axpby(alpha, xb, off(x), 1f, yb, off(y), yb, off(y), from, to));
    }

    @Override
    public void scale(Tensor x, float factor) {
        if (staged(0b1, t -> scale(t[0], factor), x)) return;
        FloatBuffer b = buf(x);
        parallel.forRows((int) x.size(), 1, (from, to) -> PointwiseKernels.axpby(factor, b, off(x), 0f, b, off(x), b, off(x), from, to));
    }

    @Override
    public void axpby(float alpha, Tensor x, float beta, Tensor y) {
        if (staged(0b10, t -> axpby(alpha, t[0], beta, t[1]), x, y)) return;
        sameSize(x, y);
        FloatBuffer xb = buf(x), yb = buf(y);
        parallel.forRows((int) x.size(), 1, (from, to) -> PointwiseKernels.axpby(alpha, xb, off(x), beta, yb, off(y), yb, off(y), from, to));
    }

    @Override
    public void clamp(Tensor x, float limit) {
        if (staged(0b1, t -> clamp(t[0], limit), x)) return;
        FloatBuffer b = buf(x);
        parallel.forRows((int) x.size(), 1, (from, to) -> OptimizerKernels.clamp(b, off(x), limit, from, to));
    }

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                      float decay, float c1, float c2) {
        if (staged(0b1101, t -> adamw(t[0], t[1], t[2], t[3], lr, beta1, beta2, eps, decay, c1, c2), param, grad, m, v)) return;
        sameSize(param, grad);
        sameSize(param, m);
        sameSize(param, v);
        FloatBuffer pb = buf(param), gb = buf(grad), mb = buf(m), vb = buf(v);
        parallel.forRows((int) param.size(), 4, (from, to) -> OptimizerKernels.adamw(pb, off(param), gb, off(grad),
                mb, off(m), vb, off(v), lr, beta1, beta2, eps, decay, c1, c2, from, to));
    }

    @Override
    public void factoredSecondMoment(Tensor grad, float eps, float beta, Tensor rowSums, Tensor colSums) {
        if (staged(0b110, t -> factoredSecondMoment(t[0], eps, beta, t[1], t[2]), grad, rowSums, colSums)) return;
        int rows = grad.rows(), cols = grad.cols();
        if (rowSums.size() != rows || colSums.size() != cols) {
            throw new IllegalArgumentException("factors " + rowSums.describe() + ", " + colSums.describe() + " for " + grad.describe());
        }
        OptimizerKernels.factoredSecondMoment(buf(grad), off(grad), rows, cols, eps, beta, buf(rowSums), off(rowSums),
                buf(colSums), off(colSums));
    }

    @Override
    public void factoredScale(Tensor grad, Tensor rowSums, Tensor colSums, Tensor out) {
        if (staged(0b1000, t -> factoredScale(t[0], t[1], t[2], t[3]), grad, rowSums, colSums, out)) return;
        sameSize(grad, out);
        int cols = grad.cols();
        float[] r = rowSums.toArray(), c = colSums.toArray();
        double sum = 0;
        for (float x : r) sum += x;
        float total = (float) sum;
        FloatBuffer gb = buf(grad), ob = buf(out);
        parallel.forRows(grad.rows(), cols, (from, to) -> OptimizerKernels.factoredScale(gb, off(grad), ob, off(out), r, c,
                total, cols, from, to));
    }

    @Override
    public void secondMomentScale(Tensor grad, float eps, float beta, Tensor v, Tensor out) {
        if (staged(0b110, t -> secondMomentScale(t[0], eps, beta, t[1], t[2]), grad, v, out)) return;
        sameSize(grad, v);
        sameSize(grad, out);
        FloatBuffer gb = buf(grad), vb = buf(v), ob = buf(out);
        parallel.forRows((int) grad.size(), 4, (from, to) -> OptimizerKernels.secondMomentScale(gb, off(grad), vb, off(v),
                ob, off(out), eps, beta, from, to));
    }

    /**
     * Partial sums over fixed chunks, added in order: the result is the same whatever the number of threads,
     * so devices of one and of several threads agree exactly.
     */
    @Override
    public double sumOfSquares(Tensor x) {
        double[] result = new double[1];
        if (staged(0, t -> result[0] = sumOfSquares(t[0]), x)) return result[0];
        FloatBuffer b = buf(x);
        int o = off(x), n = Math.toIntExact(x.size()), chunks = (n + PointwiseKernels.CHUNK - 1) / PointwiseKernels.CHUNK;
        double[] partial = new double[chunks];
        parallel.forRows(chunks, PointwiseKernels.CHUNK, (from, to) -> PointwiseKernels.sumOfSquares(b, o, n, partial, from, to));
        double s = 0;
        for (double p : partial) s += p;
        return s;
    }

    @Override
    public void addRowVector(Tensor y, Tensor bias) {
        if (staged(0b1, t -> addRowVector(t[0], t[1]), y, bias)) return;
        int c = y.cols();
        if (bias.size() != c) throw new IllegalArgumentException("bias " + bias.describe() + " for " + y.describe());
        FloatBuffer yb = buf(y), bb = buf(bias);
        parallel.forRows(y.rows(), c, (from, to) -> PointwiseKernels.addRowVector(yb, off(y), bb, off(bias), c, from, to));
    }

    @Override
    public void sumRows(Tensor x, Tensor out, boolean accumulate) {
        if (staged(0b10, t -> sumRows(t[0], t[1], accumulate), x, out)) return;
        int c = x.cols(), rows = x.rows();
        if (out.size() != c) throw new IllegalArgumentException("row sum " + out.describe() + " for " + x.describe());
        FloatBuffer xb = buf(x), ob = buf(out);
        int blocks = (c + PointwiseKernels.COLUMN_BLOCK - 1) / PointwiseKernels.COLUMN_BLOCK;
        parallel.forRows(blocks, (long) rows * PointwiseKernels.COLUMN_BLOCK, (from, to) ->
                PointwiseKernels.sumRows(xb, off(x), ob, off(out), rows, c, accumulate, from, to));
    }

    @Override
    public void layerNorm(Tensor x, Tensor gain, Tensor bias, float eps, Tensor y, Tensor mean, Tensor rstd) {
        if (staged(0b111000, t -> layerNorm(t[0], t[1], t[2], eps, t[3], t[4], t[5]), x, gain, bias, y, mean, rstd)) return;
        int c = x.cols();
        FloatBuffer xb = buf(x), gb = buf(gain), bb = buf(bias), yb = buf(y), mb = buf(mean), rb = buf(rstd);
        parallel.forRows(x.rows(), 3L * c, (from, to) -> NormKernels.layerNorm(xb, off(x), gb, off(gain), bb,
                off(bias), eps, yb, off(y), mb, off(mean), rb, off(rstd), c, from, to));
    }

    @Override
    public void layerNormBackward(Tensor dy, Tensor x, Tensor gain, Tensor mean, Tensor rstd,
                                  Tensor dx, Tensor dGain, Tensor dBias) {
        if (staged(0b11100000, t -> layerNormBackward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]), dy, x, gain, mean, rstd, dx, dGain, dBias)) return;
        int c = x.cols();
        FloatBuffer dyb = buf(dy), xb = buf(x), gb = buf(gain), mb = buf(mean), rb = buf(rstd);
        if (dx != null) {
            FloatBuffer dxb = buf(dx);
            parallel.forRows(x.rows(), 4L * c, (from, to) -> NormKernels.normBackwardInput(dyb, off(dy), xb,
                    off(x), gb, off(gain), mb, off(mean), rb, off(rstd), dxb, off(dx), c, from, to));
        }
        if (dGain != null) {
            NormKernels.normBackwardWeights(dyb, off(dy), xb, off(x), mb, off(mean), rb, off(rstd),
                    buf(dGain), off(dGain), dBias == null ? null : buf(dBias), dBias == null ? 0 : off(dBias), c, x.rows());
        }
    }

    @Override
    public void rmsNorm(Tensor x, Tensor gain, float eps, Tensor y, Tensor rstd) {
        if (staged(0b1100, t -> rmsNorm(t[0], t[1], eps, t[2], t[3]), x, gain, y, rstd)) return;
        int c = x.cols();
        FloatBuffer xb = buf(x), gb = buf(gain), yb = buf(y), rb = buf(rstd);
        parallel.forRows(x.rows(), 2L * c, (from, to) -> NormKernels.rmsNorm(xb, off(x), gb, off(gain), eps,
                yb, off(y), rb, off(rstd), c, from, to));
    }

    @Override
    public void rmsNormBackward(Tensor dy, Tensor x, Tensor gain, Tensor rstd, Tensor dx, Tensor dGain) {
        if (staged(0b110000, t -> rmsNormBackward(t[0], t[1], t[2], t[3], t[4], t[5]), dy, x, gain, rstd, dx, dGain)) return;
        int c = x.cols();
        FloatBuffer dyb = buf(dy), xb = buf(x), gb = buf(gain), rb = buf(rstd);
        if (dx != null) {
            FloatBuffer dxb = buf(dx);
            parallel.forRows(x.rows(), 3L * c, (from, to) -> NormKernels.normBackwardInput(dyb, off(dy), xb,
                    off(x), gb, off(gain), null, 0, rb, off(rstd), dxb, off(dx), c, from, to));
        }
        if (dGain != null) {
            NormKernels.normBackwardWeights(dyb, off(dy), xb, off(x), null, 0, rb, off(rstd),
                    buf(dGain), off(dGain), null, 0, c, x.rows());
        }
    }

    @Override
    public void gelu(Tensor x, Tensor y) {
        if (staged(0b10, t -> gelu(t[0], t[1]), x, y)) return;
        sameSize(x, y);
        FloatBuffer xb = buf(x), yb = buf(y);
        parallel.forRows((int) x.size(), 8, (from, to) -> PointwiseKernels.gelu(xb, off(x), yb, off(y), from, to));
    }

    @Override
    public void geluBackward(Tensor x, Tensor dy, Tensor dx) {
        if (staged(0b100, t -> geluBackward(t[0], t[1], t[2]), x, dy, dx)) return;
        sameSize(x, dy);
        sameSize(x, dx);
        FloatBuffer xb = buf(x), dyb = buf(dy), dxb = buf(dx);
        parallel.forRows((int) x.size(), 8, (from, to) ->
                PointwiseKernels.geluBackward(xb, off(x), dyb, off(dy), dxb, off(dx), from, to));
    }

    @Override
    public void swiglu(Tensor gate, Tensor up, Tensor out) {
        if (staged(0b100, t -> swiglu(t[0], t[1], t[2]), gate, up, out)) return;
        sameSize(gate, up);
        sameSize(gate, out);
        FloatBuffer gb = buf(gate), ub = buf(up), ob = buf(out);
        parallel.forRows((int) gate.size(), 8, (from, to) ->
                PointwiseKernels.swiglu(gb, off(gate), ub, off(up), ob, off(out), from, to));
    }

    @Override
    public void swigluBackward(Tensor gate, Tensor up, Tensor dOut, Tensor dGate, Tensor dUp) {
        if (staged(0b11000, t -> swigluBackward(t[0], t[1], t[2], t[3], t[4]), gate, up, dOut, dGate, dUp)) return;
        sameSize(gate, dOut);
        FloatBuffer gb = buf(gate), ub = buf(up), db = buf(dOut), dgb = buf(dGate), dub = buf(dUp);
        parallel.forRows((int) gate.size(), 8, (from, to) -> PointwiseKernels.swigluBackward(gb, off(gate), ub,
                off(up), db, off(dOut), dgb, off(dGate), dub, off(dUp), from, to));
    }

    @Override
    public void rope(Tensor x, int seq, int heads, double[] inverseFrequencies, double scale, boolean inverse, int first, int[] positions) {
        if (staged(0b1, t -> rope(t[0], seq, heads, inverseFrequencies, scale, inverse, first, positions), x)) return;
        int headDim = 2 * inverseFrequencies.length;
        if (x.cols() != heads * headDim) {
            throw new IllegalArgumentException("rope over " + heads + " heads of " + headDim + " on " + x.describe());
        }
        checkPositions(positions, x.rows(), seq);
        float[][] table = AttentionKernels.ropeTable(first + seq, inverseFrequencies, scale);
        FloatBuffer xb = buf(x);
        parallel.forRows(x.rows(), x.cols(), (from, to) ->
                AttentionKernels.rope(xb, off(x), table[0], table[1], seq, first, positions, heads, headDim, inverse, from, to));
    }

    /** Position ids, where given, are one per row and within a sequence's positions (the tables are that long). */
    private static void checkPositions(int[] positions, int rows, int seq) {
        if (positions == null) return;
        if (positions.length != rows) throw new IllegalArgumentException(positions.length + " position ids for " + rows + " rows");
        for (int p : positions) {
            if (p < 0 || p >= seq) throw new IllegalArgumentException("position id " + p + " outside sequences of " + seq);
        }
    }

    /** Groups of scores to one sequence of position ids (see {@link Device#causalSoftmax}); 0 without them. */
    private static int groupsPerSequence(Tensor scores, int queries, int keys, int[] positions) {
        if (positions == null) return 0;
        long groups = scores.size() / ((long) queries * keys), sequences = positions.length / queries;
        if (queries != keys || positions.length % queries != 0 || sequences == 0 || groups % sequences != 0) {
            throw new IllegalArgumentException(positions.length + " position ids for " + groups + " groups of " + queries + "×" + keys);
        }
        return (int) (groups / sequences);
    }

    @Override
    public void causalSoftmax(Tensor scores, int queries, int keys, int window, int[] positions) {
        if (staged(0b1, t -> causalSoftmax(t[0], queries, keys, window, positions), scores)) return;
        FloatBuffer b = buf(scores);
        int perSequence = groupsPerSequence(scores, queries, keys, positions);
        parallel.forRows((int) (scores.size() / keys), keys, (from, to) ->
                AttentionKernels.causalSoftmax(b, off(scores), queries, keys, window, positions, perSequence, from, to));
    }

    @Override
    public void softmaxBackward(Tensor probs, Tensor dProbs, int queries, int keys, int window, int[] positions) {
        if (staged(0b10, t -> softmaxBackward(t[0], t[1], queries, keys, window, positions), probs, dProbs)) return;
        sameSize(probs, dProbs);
        FloatBuffer pb = buf(probs), db = buf(dProbs);
        int perSequence = groupsPerSequence(probs, queries, keys, positions);
        parallel.forRows((int) (probs.size() / keys), keys, (from, to) ->
                AttentionKernels.softmaxBackward(pb, off(probs), db, off(dProbs), queries, keys, window, positions, perSequence, from, to));
    }

    private static void checkTokens(int[] tokens, Tensor table) {
        int vocab = table.rows();
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] < 0 || tokens[i] >= vocab) {
                throw new IllegalArgumentException("token " + tokens[i] + " at position " + i
                        + " is outside the vocabulary of " + vocab);
            }
        }
    }

    @Override
    public void embedding(int[] tokens, Tensor table, Tensor out) {
        checkTokens(tokens, table);
        int c = table.cols();
        if (out.rows() != tokens.length || out.cols() != c) {
            throw new IllegalArgumentException("embedding of " + tokens.length + " tokens into " + out.describe());
        }
        if (out.dtype() != DType.F32) {
            try (Tensor rows = empty(Category.WORKSPACE, DType.F32, out.shape())) {
                embedding(tokens, table, rows);
                copy(rows, out);
            }
            return;
        }
        FloatBuffer ob = buf(out);
        int to0 = off(table), oo = off(out);
        if (table.dtype() == DType.BF16) {
            java.nio.ShortBuffer tb = shorts(table);
            parallel.forRows(tokens.length, c, (from, to) -> {
                for (int i = from; i < to; i++) {
                    int src = to0 + tokens[i] * c, dst = oo + i * c;
                    for (int j = 0; j < c; j++) ob.put(dst + j, Bf16.widen(tb.get(src + j)));
                }
            });
            return;
        }
        FloatBuffer tb = buf(table);
        parallel.forRows(tokens.length, c, (from, to) -> {
            for (int i = from; i < to; i++) {
                int src = to0 + tokens[i] * c, dst = oo + i * c;
                for (int j = 0; j < c; j++) ob.put(dst + j, tb.get(src + j));
            }
        });
    }

    @Override
    public void embeddingBackward(int[] tokens, Tensor dOut, Tensor dTable) {
        if (staged(0b10, t -> embeddingBackward(tokens, t[0], t[1]), dOut, dTable)) return;
        checkTokens(tokens, dTable);
        int c = dTable.cols();
        FloatBuffer db = buf(dOut), tb = buf(dTable);
        int dOff = off(dOut), tOff = off(dTable);
        for (int i = 0; i < tokens.length; i++) {
            int src = dOff + i * c, dst = tOff + tokens[i] * c;
            for (int j = 0; j < c; j++) tb.put(dst + j, tb.get(dst + j) + db.get(src + j));
        }
    }

    @Override
    public void addPositions(Tensor x, Tensor table, int seq, int first, int[] positions) {
        if (staged(0b1, t -> addPositions(t[0], t[1], seq, first, positions), x, table)) return;
        int c = x.cols();
        if (table.cols() != c || table.rows() < first + seq) {
            throw new IllegalArgumentException("positions " + table.describe() + " for sequences of " + seq);
        }
        checkPositions(positions, x.rows(), seq);
        FloatBuffer xb = buf(x), tb = buf(table);
        int xo = off(x), to0 = off(table);
        parallel.forRows(x.rows(), c, (from, to) -> {
            for (int r = from; r < to; r++) {
                int dst = xo + r * c, src = to0 + (first + (positions == null ? r % seq : positions[r])) * c;
                for (int j = 0; j < c; j++) xb.put(dst + j, xb.get(dst + j) + tb.get(src + j));
            }
        });
    }

    @Override
    public void positionsBackward(Tensor dx, Tensor dTable, int seq, int[] positions) {
        if (staged(0b10, t -> positionsBackward(t[0], t[1], seq, positions), dx, dTable)) return;
        int c = dx.cols();
        checkPositions(positions, dx.rows(), seq);
        FloatBuffer db = buf(dx), tb = buf(dTable);
        int dOff = off(dx), tOff = off(dTable);
        for (int r = 0; r < dx.rows(); r++) {
            int src = dOff + r * c, dst = tOff + (positions == null ? r % seq : positions[r]) * c;
            for (int j = 0; j < c; j++) tb.put(dst + j, tb.get(dst + j) + db.get(src + j));
        }
    }

    @Override
    public double crossEntropy(Tensor logits, int[] targets, int targetOffset, float gradScale) {
        double[] result = new double[1];
        if (staged(0b1, t -> result[0] = crossEntropy(t[0], targets, targetOffset, gradScale), logits)) return result[0];
        int rows = logits.rows(), vocab = logits.cols();
        for (int r = 0; r < rows; r++) {
            int t = targets[targetOffset + r];
            if (t >= vocab) {
                throw new IllegalArgumentException("target " + t + " at position " + (targetOffset + r)
                        + " is outside the vocabulary of " + vocab);
            }
        }
        double[] rowLoss = new double[rows];
        FloatBuffer z = buf(logits);
        parallel.forRows(rows, 3L * vocab, (from, to) ->
                LossKernels.crossEntropy(z, off(logits), vocab, targets, targetOffset, gradScale, rowLoss, from, to));
        return Arrays.stream(rowLoss).sum();
    }

    @Override
    public void close() {
        parallel.close();
        held.clear();
        step.clear();
    }

    @Override
    public String toString() {
        return "cpu device " + name + " (" + threads + " threads)";
    }
}
