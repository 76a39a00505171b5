package relay.stages.tensor.sim;

import relay.stages.tensor.DeviceMemory;

/** An allocation of a simulated device: a size and whether it was freed, and no values. */
final class SimMemory implements DeviceMemory {
    private final long bytes;
    private boolean freed;

    SimMemory(long bytes) {
        this.bytes = bytes;
    }

    @Override
    public long bytes() {
        return bytes;
    }

    @Override
    public synchronized void free() {
        if (freed) throw new IllegalStateException("double free of " + bytes + " bytes");
        freed = true;
    }

    @Override
    public synchronized boolean isFreed() {
        return freed;
    }
}
