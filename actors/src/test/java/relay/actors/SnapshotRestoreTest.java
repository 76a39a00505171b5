package relay.actors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import relay.optimizers.Method;
import relay.optimizers.OptimizerSettings;
import relay.optimizers.OptimizerSettings.Lisa;
import relay.optimizers.OptimizerSettings.LowRank;
import relay.stages.model.ModelConfig;
import relay.stages.train.Batch;

/**
 * A pipeline that snapshots step k into its nodes' memory, goes on past it and is then replaced (as after a lost
 * node) by a fresh pipeline on the same nodes restored from that snapshot ends where the uninterrupted run ends:
 * the same losses, weights and optimizer state, bit for bit — with LISA's draw at k, a tied table (GPT-2), LoRA's
 * adapters and GaLore's projectors; RSO as its checkpoint resume does (B folded into the weights, to float32 rounding).
 * Messages are serialized, so the wire forms of the snapshot's messages are in the loop too.
 */
class SnapshotRestoreTest {
    static final int STEPS = PipelineResumeTest.STEPS, STOP = PipelineResumeTest.STOP;

    record Run(List<Double> losses, Map<String, float[]> weights, Map<String, float[]> state) {}

    private static Placement placement(ModelConfig cfg) {
        int[] devices = new int[cfg.layers() + 2];
        for (int i = devices.length / 2; i < devices.length; i++) devices[i] = 1;
        return new Placement(2, devices);
    }

    /** Steps [from, to), the first snapshotting the state after {@code snapshotOf} steps (0: none). */
    private static List<Double> steps(Pipeline p, List<List<Batch>> data, int from, int to, int snapshotOf) {
        List<Double> losses = new ArrayList<>();
        for (int s = from; s < to; s++) {
            Coordinator.StepResult r = p.step(data.get(s), s == from ? snapshotOf : 0);
            assertTrue(r.ok(), r.error());
            losses.add(r.loss());
        }
        return losses;
    }

    /**
     * The whole run, or ({@code interrupted}) STOP steps, one more that snapshots the state it starts from and is then
     * lost, and a new pipeline from the snapshot.
     */
    private static Run run(ModelConfig cfg, PipelineConfig pc, List<List<Batch>> data, boolean interrupted) throws InterruptedException {
        try (Nodes nodes = Nodes.local(PipelineEquivalenceTest.SERIALIZE)) {
            Pipeline.Snapshot snapshot;
            List<Double> losses;
            try (Pipeline p = Pipeline.start(nodes, cfg, PipelineEquivalenceTest.SEED, null, placement(cfg), pc)) {
                losses = new ArrayList<>(steps(p, data, 0, interrupted ? STOP : STEPS, 0));
                if (!interrupted) return new Run(losses, new TreeMap<>(p.weights()), new TreeMap<>(p.optimizerState()));
                steps(p, data, STOP, STOP + 1, STOP);
                snapshot = p.newestSnapshot();
                for (int i = 0; i < 200 && snapshot == null; i++) {
                    Thread.sleep(25);
                    snapshot = p.newestSnapshot();
                }
            }
            assertNotNull(snapshot, "the snapshot of step " + STOP + " reached its holder");
            assertEquals(STOP, snapshot.step());
            try (Pipeline p = Pipeline.start(nodes, cfg, PipelineEquivalenceTest.SEED, null, placement(cfg), pc.withFirstStep(STOP))) {
                p.restoreSnapshot(snapshot);
                losses.addAll(steps(p, data, STOP, STEPS, 0));
                return new Run(losses, new TreeMap<>(p.weights()), new TreeMap<>(p.optimizerState()));
            }
        }
    }

    @ParameterizedTest(name = "{0} on {1}, LISA {2}, {3} mode, rank {4}")
    @CsvSource({"adamw, llama, true, EXACT, 0", "adalomo, gpt2, true, EXACT, 0", "lomo, gpt2, false, EAGER, 0",
            "adalomo, llama, false, EAGER, 0", "galore, gpt2, false, EXACT, 4", "lora, gpt2, false, EXACT, 4", "rso, gpt2, false, EXACT, 4"})
    void aRunRestoredFromItsSnapshotEndsWhereTheUninterruptedOneEnds(String optimizer, String family, boolean lisa, UpdateMode mode, int rank)
            throws InterruptedException {
        ModelConfig cfg = family.equals("llama") ? PipelineEquivalenceTest.LLAMA : PipelineEquivalenceTest.GPT2;
        OptimizerSettings d = OptimizerSettings.defaults(0.01f).withLisa(new Lisa(2, 2));
        OptimizerSettings s = rank == 0 ? d : d.withLowRank(new LowRank(rank, 2, 2, d.lowRank().galoreScale(), d.lowRank().loraAlpha()));
        PipelineConfig pc = PipelineConfig.defaults(Method.named(optimizer), 0.01f).with(mode, PipelineSchedule.ONE_F_ONE_B).withSettings(s, lisa);
        List<List<Batch>> data = PipelineResumeTest.data(cfg);
        Run whole = run(cfg, pc, data, false), restored = run(cfg, pc, data, true);
        float tol = optimizer.equals("rso") ? 1e-5f : 0f;
        for (int i = 0; i < STEPS; i++) assertEquals(whole.losses().get(i), restored.losses().get(i), tol, "loss " + i);
        assertEquals(whole.weights().keySet(), restored.weights().keySet());
        whole.weights().forEach((n, w) -> assertArrayEquals(w, restored.weights().get(n), tol, n));
        assertEquals(whole.state().keySet(), restored.state().keySet());
        whole.state().forEach((n, v) -> assertArrayEquals(v, restored.state().get(n), tol, n));
    }
}
