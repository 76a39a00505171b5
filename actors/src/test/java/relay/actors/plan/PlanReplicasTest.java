package relay.actors.plan;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import relay.actors.PipelineConfig;
import relay.actors.PipelineSchedule;
import relay.actors.UpdateMode;
import relay.optimizers.Method;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.sim.Roofline;

/**
 * Two replicas of a two-device pipeline on two nodes (a replica a node), planned: the optimizer state of a stage
 * shared out between its replicas as the ledger of the real stages counts it, the exchange timed from the parameter
 * bytes the ledger counts, once a step in exact mode and after every microbatch's backward in eager mode.
 */
@Timeout(120)
class PlanReplicasTest {
    private static final ModelConfig CFG = ModelConfig.named("llama-tiny");
    private static final int BATCH = 8, SEQ = 32, MICROBATCHES = 4;
    private static final double SLOW_LINK = 1e6, FAST_LINK = 1e18;

    private static DeviceSpec twoNodesOfTwo(double link) {
        return new DeviceSpec(2, 2, 1L << 30, new Roofline(DeviceSpec.DEFAULT_FLOPS, DeviceSpec.DEFAULT_BANDWIDTH, DeviceSpec.LAUNCH_SECONDS),
                DeviceSpec.DEFAULT_BUS, link, false);
    }

    private static PipelineConfig config(UpdateMode mode) {
        return PipelineConfig.defaults(Method.ADAMW, 1e-3f).with(mode, PipelineSchedule.ONE_F_ONE_B);
    }

    private static long bytes(Plan p, int device, Category c) {
        return p.memory().get(device).getOrDefault(c, 0L);
    }

    /** Each device of the one-replica plan holds the optimizer state its two replicas' devices hold together. */
    @Test
    void theReplicasShareEachStagesOptimizerState() {
        try (Planner planner = new Planner()) {
            PipelineConfig pc = config(UpdateMode.EXACT);
            Plan two = planner.plan(CFG, twoNodesOfTwo(SLOW_LINK), pc, BATCH, SEQ, MICROBATCHES, 2);
            Plan one = planner.plan(CFG, twoNodesOfTwo(SLOW_LINK).withNodes(1), pc, BATCH, SEQ, MICROBATCHES, two.placement().withReplicas(1));
            for (int d = 0; d < 2; d++) {
                long whole = bytes(one, d, Category.OPTIMIZER_STATE);
                assertTrue(whole > 0);
                assertEquals(whole, bytes(two, d, Category.OPTIMIZER_STATE) + bytes(two, d + 2, Category.OPTIMIZER_STATE), "device " + d);
                assertTrue(bytes(two, d, Category.OPTIMIZER_STATE) < whole && bytes(two, d + 2, Category.OPTIMIZER_STATE) < whole);
            }
        }
    }

    /** Two replicas planned in a mode over a slow link and over a link of no time, and each device's exchange over the slow one. */
    private record Timed(Plan slow, Plan fast, double[] exchange) {
        static Timed of(UpdateMode mode) {
            PipelineConfig pc = config(mode);
            try (Planner planner = new Planner()) {
                Plan slow = planner.plan(CFG, twoNodesOfTwo(SLOW_LINK), pc, BATCH, SEQ, MICROBATCHES, 2);
                return new Timed(slow, planner.plan(CFG, twoNodesOfTwo(FAST_LINK), pc, BATCH, SEQ, MICROBATCHES, 2),
                        Planner.exchangeSeconds(CFG, slow.devices(), slow.placement(), pc));
            }
        }

        double slowest() {
            return Arrays.stream(exchange).max().orElseThrow();
        }
    }

    /**
     * Exact mode: the step is the schedule, then the slowest device's exchange — half its float32 gradients out and half
     * its float32 weights back over the link, which is its parameter bytes.
     */
    @Test
    void exactModeExchangesOnceAfterTheSchedule() {
        Timed t = Timed.of(UpdateMode.EXACT);
        for (int d = 0; d < 2; d++) assertEquals(bytes(t.slow(), d, Category.PARAMETERS) / SLOW_LINK, t.exchange()[d], 1e-9 * t.exchange()[d]);
        assertEquals(t.fast().stepSeconds() + t.slowest(), t.slow().stepSeconds(), 1e-9 * t.slow().stepSeconds());
    }

    /**
     * Eager mode: each device waits for its exchange after every microbatch's backward, so the step holds each device's
     * M exchanges and is delayed by no more than all of them.
     */
    @Test
    void eagerModeExchangesAfterEveryBackward() {
        Timed t = Timed.of(UpdateMode.EAGER);
        double step = t.slow().stepSeconds(), all = Arrays.stream(t.exchange()).sum();
        assertTrue(step >= MICROBATCHES * t.slowest(), step + " s against " + MICROBATCHES + " × " + t.slowest());
        assertTrue(step > t.fast().stepSeconds() + t.slowest(), "more than exact mode's one exchange");
        assertTrue(step <= t.fast().stepSeconds() + MICROBATCHES * all + 1e-9, step + " s");
    }
}
