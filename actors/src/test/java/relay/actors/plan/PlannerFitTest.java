package relay.actors.plan;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import relay.actors.PipelineConfig;
import relay.actors.Placement;
import relay.optimizers.Method;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;

/** The search: what it returns fits the devices it was given, and when nothing can, it says so and what would. */
@Timeout(120)
class PlannerFitTest {
    private static final ModelConfig CFG = ModelConfig.named("llama-tiny");
    private static final PipelineConfig PC = PipelineConfig.defaults(Method.ADAMW, 1e-3f);
    private static final int BATCH = 4, SEQ = 64;

    private static DeviceSpec devices(int count, long bytes) {
        return DeviceSpec.parse(count + "x" + bytes + "MB", 936e9, 25e9, 12.5e9, 1L << 34).withNodes(1);
    }

    private static long need(List<Map<Category, Long>> memory) {
        return memory.stream().mapToLong(d -> d.values().stream().mapToLong(Long::longValue).sum()).max().orElseThrow();
    }

    @Test
    void whereKeepingActivationsDoesNotFitTheSearchRecomputesOrSplitsTheBatch() {
        try (Planner planner = new Planner()) {
            Placement two = Placement.balanced(Planner.stageParameters(CFG), 2);
            long kept = need(planner.memory(CFG, two, PC, BATCH, SEQ, 1));
            long recomputed = need(planner.memory(CFG, two, PC.withRecompute(true), BATCH, SEQ, 1));
            assertTrue(recomputed < kept);
            // Room for the recomputing plan of one microbatch, not for keeping a whole batch's activations.
            long capacity = (recomputed + kept) / 2;
            DeviceSpec spec = new DeviceSpec(1, 2, capacity, devices(2, 1).roofline(), 25e9, 12.5e9, false);
            Planner.Search s = planner.fit(CFG, spec, PC, BATCH, SEQ);
            assertTrue(s.fits(), s.why());
            Plan p = s.best();
            for (int d = 0; d < 2; d++) assertTrue(p.need(d) <= capacity, "device " + d + " needs " + p.need(d));
            assertTrue(p.config().recompute() || p.microbatches() > 1, "keeping one microbatch of four sequences does not fit");
        }
    }

    @Test
    void whereNothingFitsItSaysWhyAndHowManyNodesWould() {
        try (Planner planner = new Planner()) {
            PipelineConfig lomo = PipelineConfig.defaults(Method.LOMO, 1e-3f);
            DeviceSpec none = new DeviceSpec(1, 2, 1, devices(2, 1).roofline(), 25e9, 12.5e9, false);
            // Devices 10% larger than the lightest plan on three nodes of two needs (one stage a device): with several
            // microbatches a step, activations in flight make a plan's peak vary by a message or so between runs.
            Plan lightestOnSix = planner.fit(CFG, none.withNodes(3), lomo, BATCH, SEQ).best();
            DeviceSpec spec = new DeviceSpec(1, 2, lightestOnSix.need(lightestOnSix.fullest()) * 11 / 10, none.roofline(), 25e9, 12.5e9,
                    false);
            Planner.Search s = planner.fit(CFG, spec, lomo, BATCH, SEQ);
            assertFalse(s.fits());
            assertTrue(s.why().contains("needs") && s.why().contains("parameters"), s.why());
            Planner.Search more = planner.fewestNodes(CFG, spec, lomo, BATCH, SEQ);
            assertNotNull(more);
            assertTrue(more.fits() && more.best().fits());
            int nodes = more.best().devices().nodes();
            assertTrue(nodes == 2 || nodes == 3, nodes + " nodes");
        }
    }
}
