package relay.stages.tensor.cpu;

import java.nio.FloatBuffer;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;
import relay.stages.tensor.DeviceMemory;

/**
 * Native (off-heap) memory, seen by BLAS as a pointer and by Java kernels as a buffer. A tensor's
 * free hands the block back to its device's pool; {@link #release()} returns it to the system.
 */
final class CpuMemory implements DeviceMemory {
    private final FloatPointer pointer;
    private final FloatBuffer buffer;
    private final long bytes;
    private final MemoryPool pool;
    /** For memory lent by its owner (a transport's receive buffer): what gives it back; null for the device's own. */
    private final Runnable giveBack;
    private boolean freed;

    private CpuMemory(FloatPointer pointer, long floats, MemoryPool pool, Runnable giveBack) {
        this.pointer = pointer;
        this.buffer = pointer.asBuffer();
        this.bytes = floats * Float.BYTES;
        this.pool = pool;
        this.giveBack = giveBack;
    }

    /**
     * The floats of a direct buffer (position 0, little-endian, 64-byte aligned) in place; freeing them runs
     * {@code giveBack} instead of pooling them. The buffer must stay untouched until then.
     */
    static CpuMemory lent(java.nio.ByteBuffer bytes, Runnable giveBack) {
        long floats = bytes.remaining() / Float.BYTES;
        FloatPointer p = new FloatPointer(new BytePointer(bytes));
        p.position(0).limit(floats).capacity(floats);
        return new CpuMemory(p, floats, null, giveBack);
    }

    /** A block of {@code floats}, zeroed when {@code zero}; reused from the pool when one fits. */
    static CpuMemory allocate(long floats, boolean zero, MemoryPool pool, String device) {
        if (floats > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("a CPU tensor holds at most 2^31-1 floats; asked for " + floats);
        }
        CpuMemory reused = pool.take(floats);
        if (reused != null) {
            reused.freed = false;
            if (zero) Pointer.memset(reused.pointer, 0, reused.bytes);
            return reused;
        }
        Pointer raw = Pointer.calloc(Math.max(floats, 1), Float.BYTES);
        if (raw == null || raw.isNull()) {
            throw new OutOfMemoryError("device " + device + ": cannot allocate " + floats * Float.BYTES + " bytes");
        }
        FloatPointer p = new FloatPointer(raw);
        p.capacity(floats);
        return new CpuMemory(p, floats, pool, null);
    }

    FloatBuffer buffer() {
        return buffer;
    }

    /** The bytes of floats [offset, offset + floats), in place. */
    java.nio.ByteBuffer bytes(long offset, long floats) {
        BytePointer b = new BytePointer(pointer);
        b.position(offset * Float.BYTES).limit((offset + floats) * Float.BYTES);
        return b.asByteBuffer();
    }

    /** A pointer to element {@code offset}, for BLAS. */
    FloatPointer at(long offset) {
        return new FloatPointer(pointer).position(offset);
    }

    /**
     * A pointer to element {@code offset} for untyped calls such as memcpy, which take positions in bytes:
     * a FloatPointer's position would be read as a byte count there.
     */
    BytePointer bytesAt(long offset) {
        return new BytePointer(pointer).position(offset * Float.BYTES);
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
        else pool.give(this, bytes / Float.BYTES);
    }

    /** Gives the block back to the system; only the pool calls this, for blocks no tensor holds. */
    void release() {
        Pointer.free(pointer);
    }

    @Override
    public synchronized boolean isFreed() {
        return freed;
    }
}
