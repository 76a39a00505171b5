package relay.actors.plan;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import relay.stages.tensor.sim.Roofline;

/**
 * The devices a plan is for: how many nodes of how many devices, each device's memory and roofline, and the
 * bandwidth between devices of a node (its bus) and between nodes (the link). {@code cpu} devices are this
 * machine's CPU devices, its cores split evenly among them as {@code relay train} splits them by default, whose stage
 * costs are measured rather than modelled and whose messages in one JVM move no bytes.
 */
public record DeviceSpec(int nodes, int perNode, long memoryBytes, Roofline roofline, double busBytesPerSecond,
                         double linkBytesPerSecond, boolean cpu) {

    /** An RTX 3090's float32 peak (35.6 TFLOPS) and memory bandwidth (936 GB/s), a launch of 5 µs: what a bare "24GiB" means. */
    public static final double DEFAULT_FLOPS = 35.6e12, DEFAULT_BANDWIDTH = 936e9, LAUNCH_SECONDS = 5e-6;
    /** PCIe 4.0 ×16 in practice between devices of a node, 100 Gb/s Ethernet between nodes. */
    public static final double DEFAULT_BUS = 25e9, DEFAULT_LINK = 12.5e9;

    private static final Pattern GPU = Pattern.compile("(?:(\\d+)x)?(\\d+)[x:](\\d+(?:\\.\\d+)?)(MiB|GiB|TiB|MB|GB|TB)"
            + "(?:@(\\d+(?:\\.\\d+)?)(GFLOPS|TFLOPS|PFLOPS))?", Pattern.CASE_INSENSITIVE);
    private static final Pattern CPU = Pattern.compile("(\\d+)x?cpu");

    public DeviceSpec {
        if (nodes < 1 || perNode < 1) throw new IllegalArgumentException("a plan needs at least one node of one device");
        if (memoryBytes <= 0) throw new IllegalArgumentException("device memory must be > 0");
        if (!(busBytesPerSecond > 0) || !(linkBytesPerSecond > 0)) throw new IllegalArgumentException("bandwidths must be > 0");
    }

    public int devices() {
        return nodes * perNode;
    }

    public int nodeOf(int device) {
        return device / perNode;
    }

    /** Seconds to send {@code bytes} from device {@code d} to device {@code d + 1}. */
    public double sendSeconds(int d, double bytes) {
        if (cpu) return 0;
        return bytes / (nodeOf(d) == nodeOf(d + 1) ? busBytesPerSecond : linkBytesPerSecond);
    }

    /** The threads of each of this machine's CPU devices: its cores split evenly among them. */
    public int cpuThreads() {
        return relay.actors.PipelineConfig.Execution.evenShare(Runtime.getRuntime().availableProcessors(), perNode);
    }

    /** The same nodes, {@code nodes} of them. */
    public DeviceSpec withNodes(int nodes) {
        return new DeviceSpec(nodes, perNode, memoryBytes, roofline, busBytesPerSecond, linkBytesPerSecond, cpu);
    }

    /**
     * {@code 8x24GiB} (eight devices of 24 GiB), {@code 2x4:80GiB@790TFLOPS} (two nodes of four), or {@code 2xcpu}
     * (this machine's CPU devices, each with its share of its cores and of its memory {@code hostBytes}); {@code bandwidth} is each device's
     * memory bandwidth in bytes per second.
     */
    public static DeviceSpec parse(String spec, double bandwidth, double bus, double link, long hostBytes) {
        String s = spec.trim().toLowerCase(Locale.ROOT).replace('×', 'x');
        Matcher c = CPU.matcher(s);
        if (c.matches()) {
            int n = Integer.parseInt(c.group(1));
            // The devices share the machine's memory: each is given its share.
            return new DeviceSpec(1, n, hostBytes / Math.max(n, 1), new Roofline(DEFAULT_FLOPS, bandwidth, LAUNCH_SECONDS), Double.MAX_VALUE,
                    Double.MAX_VALUE, true);
        }
        Matcher m = GPU.matcher(spec.trim().replace('×', 'x'));
        if (!m.matches()) {
            throw new IllegalArgumentException("devices '" + spec + "': expected COUNTxMEMORY[@FLOPS] (8x24GiB, 8x24GiB@71TFLOPS), "
                    + "NODESxCOUNT:MEMORY[@FLOPS] (2x4:80GiB@790TFLOPS) or COUNTxcpu");
        }
        int nodes = m.group(1) == null ? 1 : Integer.parseInt(m.group(1));
        int perNode = Integer.parseInt(m.group(2));
        double memory = Double.parseDouble(m.group(3)) * switch (m.group(4).toLowerCase(Locale.ROOT)) {
            case "mib" -> 1L << 20;
            case "gib" -> 1L << 30;
            case "tib" -> 1L << 40;
            case "mb" -> 1e6;
            case "gb" -> 1e9;
            default -> 1e12;
        };
        double flops = m.group(5) == null ? DEFAULT_FLOPS : Double.parseDouble(m.group(5)) * switch (m.group(6).toUpperCase(Locale.ROOT)) {
            case "GFLOPS" -> 1e9;
            case "TFLOPS" -> 1e12;
            default -> 1e15;
        };
        return new DeviceSpec(nodes, perNode, (long) memory, new Roofline(flops, bandwidth, LAUNCH_SECONDS), bus, link, false);
    }

    @Override
    public String toString() {
        if (cpu) return perNode + " CPU devices of this machine, " + cpuThreads() + " thread(s) each";
        String node = perNode + " × " + String.format(Locale.ROOT, "%.1f GiB", memoryBytes / (double) (1L << 30))
                + String.format(Locale.ROOT, " @ %.1f TFLOPS, %.0f GB/s", roofline.flops() / 1e12, roofline.bytesPerSecond() / 1e9);
        return nodes == 1 ? node : nodes + " nodes of " + node;
    }
}
