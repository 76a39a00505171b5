package relay.stages.tensor;

/** One allocation on a device. Freed exactly once, explicitly; the garbage collector never frees it. */
public interface DeviceMemory {
    long bytes();

    void free();

    boolean isFreed();
}
