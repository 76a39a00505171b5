package relay.actors.plan;

import java.util.List;
import java.util.Map;
import relay.actors.PipelineConfig;
import relay.actors.Placement;
import relay.actors.StageSpec;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;

/**
 * A model's training step planned on devices: where its stages go (in each replica of the pipeline), each device's
 * peak memory by category (what the ledger counts when the step runs), and the step time, bubble and tokens per
 * second the schedule gives for the stages' costs.
 *
 * @param memory each device's peak bytes per category over building the stages and one step
 */
public record Plan(ModelConfig model, DeviceSpec devices, PipelineConfig config, int batch, int seq, int microbatches,
                   Placement placement, List<Map<Category, Long>> memory, double stepSeconds, double bubble) {

    /** A device's need: the sum of its categories' peaks, which bounds the peak of their sum from above. */
    public long need(int device) {
        return memory.get(device).values().stream().mapToLong(Long::longValue).sum();
    }

    public boolean fits(int device) {
        return need(device) <= devices.memoryBytes();
    }

    public boolean fits() {
        for (int d = 0; d < memory.size(); d++) if (!fits(d)) return false;
        return true;
    }

    /** The device that needs the most memory. */
    public int fullest() {
        int best = 0;
        for (int d = 1; d < memory.size(); d++) if (need(d) > need(best)) best = d;
        return best;
    }

    public double tokensPerSecond() {
        return (double) batch * seq / stepSeconds;
    }

    /**
     * Host memory each node holds for snapshots in memory (with two or more nodes and one replica; none else): the newest two of
     * its own stages' snapshots and of the previous node's in the ring, each the weights the stages hold, kept in
     * float32, and their optimizer state. A head's replica of a tied table is counted, though the embedding's is kept.
     */
    public long[] snapshotBytes() {
        long[] own = new long[devices.nodes()], held = new long[devices.nodes()];
        // Replicas of a pipeline take no snapshots in memory yet.
        if (devices.nodes() < 2 || placement.replicas() > 1) return held;
        for (int d = 0; d < memory.size(); d++) {
            Map<Category, Long> m = memory.get(d);
            own[devices.nodeOf(d)] += m.get(Category.PARAMETERS) / config.precision().weights().bytes() * Float.BYTES
                    + m.get(Category.OPTIMIZER_STATE);
        }
        for (int n = 0; n < own.length; n++) held[n] = 2 * (own[n] + own[(n + own.length - 1) % own.length]);
        return held;
    }

    /** Bytes for people: in GiB from 1 GiB up, else in MiB. */
    public static String size(long bytes) {
        return bytes >= 1L << 30 ? String.format(java.util.Locale.ROOT, "%.1f GiB", bytes / (double) (1L << 30))
                : String.format(java.util.Locale.ROOT, "%.1f MiB", bytes / (double) (1L << 20));
    }

    /** The stages placed on a device (of every replica's) by name: "embedding..block-9", "block-10..head-r1". */
    public String stagesOn(int device) {
        int local = device % placement.devices(), replica = placement.replicas() == 1 ? -1 : device / placement.devices();
        int first = placement.firstOnDevice(local), last = placement.lastOnDevice(local);
        return StageSpec.name(first, model.layers(), replica) + (first == last ? "" : ".." + StageSpec.name(last, model.layers(), replica));
    }
}
