package relay.deploy.train;

import java.util.EnumMap;
import java.util.Map;
import relay.actors.Placement;
import relay.actors.plan.DeviceSpec;
import relay.actors.plan.Plan;
import relay.actors.plan.Planner;
import relay.actors.plan.StageCosts;
import relay.stages.memory.Category;
import relay.stages.memory.ProcessMemory;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.sim.Roofline;

/**
 * A run's memory, planned before anything is built: the tensors of every device this JVM hosts, as their ledgers will
 * count them (the real stages, or the plain loop, stepped once on devices that hold no values), and the copy of the
 * weights and optimizer state that a checkpoint (and a LISA re-placement) takes into the Java heap. Tensors live in
 * native memory, outside the heap: they and the copy must fit in what the machine has available, the copy also in the
 * heap's limit. A run that cannot fit is refused with both figures before it allocates.
 *
 * @param tensors peak bytes by category, summed over this JVM's devices
 * @param copy    bytes a checkpoint copies into the heap
 */
record RunMemory(Map<Category, Long> tensors, long copy) {
    /** The run places its stages by their measured costs, which takes building them; a roofline's costs place them alike. */
    private static final Roofline PLACING = new Roofline(DeviceSpec.DEFAULT_FLOPS, DeviceSpec.DEFAULT_BANDWIDTH, DeviceSpec.LAUNCH_SECONDS);

    /** What a machine has for a run: the bytes this process could still take, and the limit of its Java heap. */
    record Room(long availableBytes, long heapBytes) {
        static Room here() {
            return new Room(ProcessMemory.availableBytes(), Runtime.getRuntime().maxMemory());
        }
    }

    /**
     * Refuses a run that does not fit in {@code room}. A cluster's coordinator hosts no device, so a run over nodes is
     * not checked here: its workers' devices are on their own machines.
     */
    static void check(TrainConfig c, ModelConfig cfg, int firstStep, Room room) {
        if (c.pipeline().nodes() == 1) plan(c, cfg, firstStep).refuseBeyond(room, c);
    }

    /** The memory of a run in this JVM from step {@code firstStep}, with these settings and this model. */
    static RunMemory plan(TrainConfig c, ModelConfig cfg, int firstStep) {
        Map<Category, Long> tensors = new EnumMap<>(Category.class);
        if (!c.optimizer().method().inPipeline()) {
            tensors.putAll(LoopEngine.planned(c, cfg));
        } else {
            Placement placement = Placement.balanced(StageCosts.modelled(cfg, c.replicaMicrobatchSize(), c.run().seq(), PLACING,
                    c.precision()).total(), TrainingRun.devices(c, cfg)).withReplicas(c.pipeline().replicas());
            try (Planner planner = new Planner()) {
                planner.memory(cfg, placement, c.pipelineConfig(firstStep), c.run().batch(), c.run().seq(), c.pipeline().microbatches())
                        .forEach(device -> device.forEach((category, bytes) -> tensors.merge(category, bytes, Long::sum)));
            }
        }
        return new RunMemory(tensors, tensors.getOrDefault(Category.PARAMETERS, 0L) + tensors.getOrDefault(Category.OPTIMIZER_STATE, 0L));
    }

    /** The tensors' bytes (each category at its peak, which bounds their sum's peak from above) and the copy's. */
    long need() {
        return tensors.values().stream().mapToLong(Long::longValue).sum() + copy;
    }

    /** The memory available first (it must hold the tensors and the copy), then the heap's limit (the copy). */
    private void refuseBeyond(Room room, TrainConfig c) {
        if (need() > room.availableBytes()) {
            Category largest = tensors.entrySet().stream().max(Map.Entry.comparingByValue()).orElseThrow().getKey();
            throw new IllegalArgumentException("the run needs " + Plan.size(need()) + " of memory as planned (" + name(largest) + " "
                    + Plan.size(tensors.get(largest)) + " of it, a checkpoint's copy " + Plan.size(copy) + ") and this machine has "
                    + Plan.size(room.availableBytes()) + " available: " + advice(largest, c));
        }
        if (copy > room.heapBytes()) {
            throw new IllegalArgumentException("a checkpoint of the run copies its weights and optimizer state (" + Plan.size(copy)
                    + ") into the Java heap, which may grow to " + Plan.size(room.heapBytes()) + " here: give it more, e.g. "
                    + "RELAY_JAVA_OPTS=-Xmx" + ((copy >> 30) + 2) + "g");
        }
    }

    private static String name(Category c) {
        return c.key().replace('_', ' ');
    }

    /** What shrinks the largest category. */
    private static String advice(Category largest, TrainConfig c) {
        boolean pipeline = c.optimizer().method().inPipeline();
        String spread = pipeline ? ", or nodes > 1 (the stages spread over machines)" : "";
        return switch (largest) {
            case PARAMETERS -> "a smaller model" + spread;
            case GRADIENTS -> (pipeline ? "mode=eager (each gradient applied as it comes)"
                    : "a method that runs in the pipeline (gradients applied as they come)") + spread;
            case OPTIMIZER_STATE -> "an optimizer with less state (adalomo, lomo, lisa-adalomo)" + spread;
            default -> "lower batch or seq, or raise microbatches" + (c.pipeline().recompute() ? "" : ", or set recompute=true");
        };
    }
}
