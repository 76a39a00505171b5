package relay.stages.memory;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;

/** What the operating system says this process holds, beside the ledger's own count, and what it could still take. */
public final class ProcessMemory {
    private ProcessMemory() {}

    /** The peak resident set (VmHWM of /proc/self/status) in bytes, or −1 where the system does not say (not Linux). */
    public static long peakResidentBytes() {
        return field(Path.of("/proc/self/status"), "VmHWM:");
    }

    /**
     * The bytes this process could still take without swapping or being killed: the system's MemAvailable (free memory
     * and the caches it can drop), no more than the limit the JVM runs under (a container's, else the machine's) less the
     * resident set this process already holds. Where the system does not say (not Linux): its free memory.
     */
    public static long availableBytes() {
        var os = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        long available = field(Path.of("/proc/meminfo"), "MemAvailable:");
        long resident = field(Path.of("/proc/self/status"), "VmRSS:");
        if (available < 0) return os.getFreeMemorySize();
        return Math.min(available, os.getTotalMemorySize() - Math.max(resident, 0));
    }

    /**
     * Starts the peak resident set over from the current one (Linux: "5" to /proc/self/clear_refs), so a
     * benchmark's peak leaves out its own set-up; returns whether the system did.
     */
    public static boolean resetPeak() {
        try {
            Files.writeString(Path.of("/proc/self/clear_refs"), "5");
            return true;
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    /** A "Name:   123 kB" line of a /proc file, in bytes, or −1. */
    private static long field(Path file, String name) {
        try {
            for (String line : Files.readAllLines(file)) {
                if (line.startsWith(name)) return Long.parseLong(line.substring(name.length()).trim().split("\\s+")[0]) * 1024;
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }
}
