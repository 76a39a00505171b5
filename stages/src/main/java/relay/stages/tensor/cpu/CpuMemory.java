package relay.stages.tensor.cpu;

import java.nio.FloatBuffer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;
import relay.stages.tensor.DeviceMemory;

/** Native (off-heap) memory from calloc, seen by BLAS as a pointer and by Java kernels as a buffer. */
final class CpuMemory implements DeviceMemory {
    private final FloatPointer pointer;
    private final FloatBuffer buffer;
    private final long bytes;
    private boolean freed;

    private CpuMemory(FloatPointer pointer, long floats) {
        this.pointer = pointer;
        this.buffer = pointer.asBuffer();
        this.bytes = floats * Float.BYTES;
    }

    static CpuMemory allocate(long floats, String device) {
        if (floats > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("a CPU tensor holds at most 2^31-1 floats; asked for " + floats);
        }
        Pointer raw = Pointer.calloc(Math.max(floats, 1), Float.BYTES);
        if (raw == null || raw.isNull()) {
            throw new OutOfMemoryError("device " + device + ": cannot allocate " + floats * Float.BYTES + " bytes");
        }
        FloatPointer p = new FloatPointer(raw);
        p.capacity(floats);
        return new CpuMemory(p, floats);
    }

    FloatBuffer buffer() {
        return buffer;
    }

    /** A pointer to element {@code offset}, for BLAS. */
    FloatPointer at(long offset) {
        return new FloatPointer(pointer).position(offset);
    }

    @Override
    public long bytes() {
        return bytes;
    }

    @Override
    public synchronized void free() {
        if (freed) throw new IllegalStateException("double free of " + bytes + " bytes");
        freed = true;
        Pointer.free(pointer);
    }

    @Override
    public synchronized boolean isFreed() {
        return freed;
    }
}
