package relay.actors.plan;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import relay.actors.PipelineConfig;
import relay.actors.Placement;
import relay.optimizers.Method;
import relay.stages.memory.Category;
import relay.stages.model.Precision;
import relay.stages.tensor.DType;

/** The host memory a plan says each node holds for snapshots, worked out by hand for a ring of three nodes. */
class PlanSnapshotTest {
    private static Map<Category, Long> device(long parameters, long state) {
        Map<Category, Long> m = new EnumMap<>(Category.class);
        for (Category c : Category.values()) m.put(c, 0L);
        m.put(Category.PARAMETERS, parameters);
        m.put(Category.OPTIMIZER_STATE, state);
        m.put(Category.ACTIVATIONS, 1000L);
        return m;
    }

    private static Plan plan(int nodes, int perNode, PipelineConfig pc, List<Map<Category, Long>> memory) {
        DeviceSpec spec = new DeviceSpec(nodes, perNode, 1L << 30, null, 1, 1, false);
        int[] deviceOfStage = new int[Math.max(3, memory.size())];
        for (int s = 0; s < deviceOfStage.length; s++) deviceOfStage[s] = Math.min(s, memory.size() - 1);
        return new Plan(null, spec, pc, 4, 16, 1, new Placement(memory.size(), deviceOfStage), memory, 1, 0);
    }

    @Test
    void eachNodeHoldsTheNewestTwoOfItsOwnAndThePreviousNodesSnapshots() {
        PipelineConfig pc = PipelineConfig.defaults(Method.ADAMW, 0.01f);
        // Three nodes of two devices: node 0 holds 100 + 200 (+ state 10 + 20), node 1 400 + 0, node 2 1000 + 30.
        List<Map<Category, Long>> memory = List.of(device(100, 10), device(200, 20), device(400, 0), device(0, 0), device(1000, 30),
                device(0, 0));
        long own0 = 330, own1 = 400, own2 = 1030;
        assertArrayEquals(new long[] {2 * (own0 + own2), 2 * (own1 + own0), 2 * (own2 + own1)}, plan(3, 2, pc, memory).snapshotBytes());
    }

    @Test
    void bf16WeightsAreHeldInFloat32AndOneNodeHoldsNone() {
        PipelineConfig pc = PipelineConfig.defaults(Method.LOMO, 0.01f).withPrecision(new Precision(DType.BF16, DType.BF16));
        List<Map<Category, Long>> memory = List.of(device(100, 0), device(50, 0));
        assertArrayEquals(new long[] {2 * (200 + 100), 2 * (100 + 200)}, plan(2, 1, pc, memory).snapshotBytes());
        assertArrayEquals(new long[] {0}, plan(1, 2, pc, memory).snapshotBytes());
    }
}
