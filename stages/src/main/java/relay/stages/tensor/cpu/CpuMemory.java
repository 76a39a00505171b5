package relay.stages.tensor.cpu;

import java.nio.FloatBuffer;
import java.nio.ShortBuffer;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;
import relay.stages.tensor.DeviceMemory;

/**
 * Native (off-heap) memory, seen by BLAS as a pointer and by Java kernels as a buffer of floats or, for bfloat16
 * tensors, of 16-bit values: a block of its device's {@link Arena}, which a free hands back, or memory lent by its
 * owner (a transport's receive buffer).
 */
final class CpuMemory implements DeviceMemory {
    private final BytePointer pointer;
    private final long bytes;
    /** Where the block came from, or null for lent memory. */
    private final Arena arena;
    private final Arena.Region block;
    /** For memory lent by its owner: what gives it back; null for the device's own. */
    private final Runnable giveBack;
    private FloatBuffer floats;
    private ShortBuffer shorts;
    private boolean freed;

    private CpuMemory(BytePointer pointer, long bytes, Arena arena, Arena.Region block, Runnable giveBack) {
        this.pointer = pointer;
        this.bytes = bytes;
        this.arena = arena;
        this.block = block;
        this.giveBack = giveBack;
    }

    /**
     * The bytes of a direct buffer (position 0, little-endian, 64-byte aligned) in place; freeing them runs
     * {@code giveBack} instead of returning them to an arena. The buffer must stay untouched until then.
     */
    static CpuMemory lent(java.nio.ByteBuffer bytes, Runnable giveBack) {
        long n = bytes.remaining();
        BytePointer p = new BytePointer(bytes);
        p.position(0).limit(n).capacity(n);
        return new CpuMemory(p, n, null, null, giveBack);
    }

    /** A block of {@code bytes} from the arena, zeroed when {@code zero}. */
    static CpuMemory allocate(long bytes, boolean zero, Arena arena, String device) {
        // Java kernels see the block through a buffer, whose index is an int of bytes.
        if (bytes > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("device " + device + ": a CPU tensor holds at most 2^31-1 bytes; asked for " + bytes);
        }
        Arena.Region block = arena.take(bytes);
        BytePointer p = Arena.pointer(block);
        if (zero) Pointer.memset(p, 0, bytes);
        return new CpuMemory(p, bytes, arena, block, null);
    }
    /** The block as floats (a float32 tensor's). */
    FloatBuffer floats() {
        if (floats == null) floats = new FloatPointer(pointer).capacity(bytes / Float.BYTES).asBuffer();
        return floats;
    }

    /** The block as 16-bit values (a bfloat16 tensor's). */
    ShortBuffer shorts() {
        if (shorts == null) {
            shorts = pointer.asByteBuffer().order(java.nio.ByteOrder.nativeOrder()).asShortBuffer();
        }
        return shorts;
    }

    /** The bytes [offset, offset + length), in place. */
    java.nio.ByteBuffer bytes(long offset, long length) {
        BytePointer b = new BytePointer(pointer);
        b.position(offset).limit(offset + length);
        return b.asByteBuffer();
    }

    /** A pointer to float element {@code offset}, for BLAS. */
    FloatPointer floatAt(long offset) {
        return new FloatPointer(pointer).position(offset);
    }

    /**
     * A pointer to byte {@code offset} for untyped calls such as memcpy, which take positions in bytes: a
     * FloatPointer's position would be read as a count of floats there.
     */
    BytePointer byteAt(long offset) {
        return new BytePointer(pointer).position(offset);
    }

    @Override
    public long bytes() {
        return bytes;
    }

    @Override
    public void free() {
        synchronized (this) {
            if (freed) throw new IllegalStateException("double free of " + bytes + " bytes");
            freed = true;
        }
        if (giveBack != null) giveBack.run();
        else arena.give(block);
    }

    @Override
    public synchronized boolean isFreed() {
        return freed;
    }
}
