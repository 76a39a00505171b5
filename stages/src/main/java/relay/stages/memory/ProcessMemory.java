package relay.stages.memory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** What the operating system says this process holds, beside the ledger's own count. */
public final class ProcessMemory {
    private ProcessMemory() {}

    /** The peak resident set (VmHWM of /proc/self/status) in bytes, or −1 where the system does not say (not Linux). */
    public static long peakResidentBytes() {
        return field("VmHWM:");
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

    private static long field(String name) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith(name)) return Long.parseLong(line.substring(name.length()).trim().split("\\s+")[0]) * 1024;
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }
}
