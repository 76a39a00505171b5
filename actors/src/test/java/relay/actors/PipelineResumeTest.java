package relay.actors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import relay.optimizers.Method;
import relay.optimizers.OptimizerSettings;
import relay.optimizers.OptimizerSettings.Lisa;
import relay.optimizers.OptimizerSettings.LowRank;
import relay.stages.io.HfModelDirectory;
import relay.stages.io.SafeTensors;
import relay.stages.model.ModelConfig;
import relay.stages.train.Batch;
import relay.stages.train.SyntheticData;

/**
 * A run stopped after k steps and resumed from its weights and optimizer state — in a fresh pipeline that
 * starts at step k — ends exactly where the uninterrupted run ends: same losses, weights and state, bit
 * for bit, in exact and eager mode, with LISA's draw in force at k applied though k is not a redraw step.
 */
class PipelineResumeTest {
    static final int STEPS = 5;
    static final int STOP = 3;

    @TempDir
    Path dir;

    record State(List<Double> losses, List<SafeTensors.Tensor32> tensors, Map<String, float[]> optimizerState) {
        Map<String, float[]> weights() {
            Map<String, float[]> w = new TreeMap<>();
            tensors.forEach(t -> w.put(t.name(), t.values()));
            return w;
        }
    }

    static List<List<Batch>> data(ModelConfig cfg) {
        SyntheticData d = new SyntheticData(cfg.vocabSize(), 2, 6, 0.2, 21);
        List<List<Batch>> steps = new ArrayList<>();
        for (int s = 0; s < STEPS; s++) steps.add(List.of(d.next(), d.next()));
        return steps;
    }

    /** Runs steps [from, to) in a fresh pipeline, its stages reading the weights {@code start} left in a model directory. */
    State run(ModelConfig cfg, PipelineConfig pc, List<List<Batch>> data, int from, int to, State start) {
        return run(cfg, pc, data, from, to, start, false);
    }

    /** With {@code baseWeights}, the stages read no weights but start from the seed's (LoRA's base model) whatever start left. */
    State run(ModelConfig cfg, PipelineConfig pc, List<List<Batch>> data, int from, int to, State start, boolean baseWeights) {
        int[] devices = new int[cfg.layers() + 2];
        for (int i = devices.length / 2; i < devices.length; i++) devices[i] = 1;
        Path weights = null;
        if (start != null && !baseWeights) {
            weights = dir.resolve("step-" + from);
            try {
                HfModelDirectory.save(cfg, start.tensors(), weights);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        try (Pipeline p = Pipeline.start(cfg, PipelineEquivalenceTest.SEED, weights, new Placement(2, devices), pc.withFirstStep(from),
                PipelineEquivalenceTest.SERIALIZE)) {
            if (start != null) p.restoreOptimizerState(start.optimizerState());
            List<Double> losses = new ArrayList<>(start == null ? List.of() : start.losses());
            for (int s = from; s < to; s++) {
                Coordinator.StepResult r = p.step(data.get(s));
                assertTrue(r.ok(), r.error());
                assertEquals(s, r.step());
                losses.add(r.loss());
            }
            return new State(losses, p.tensors(), new TreeMap<>(p.optimizerState()));
        }
    }

    @ParameterizedTest(name = "{0} on {1}, LISA {2}, {3} mode, {4}")
    @CsvSource({"adamw, llama, true, EXACT, 1f1b", "adalomo, gpt2, true, EXACT, 1f1b", "adalomo, llama, false, EAGER, 1f1b",
            "lomo, gpt2, false, EAGER, 1f1b", "adamw, llama, true, EXACT, zb-h1", "lomo, gpt2, false, EAGER, zb-h1"})
    void aResumedRunEndsExactlyWhereTheUninterruptedOneEnds(String optimizer, String family, boolean lisa, UpdateMode mode, String schedule) {
        ModelConfig cfg = family.equals("llama") ? PipelineEquivalenceTest.LLAMA : PipelineEquivalenceTest.GPT2;
        OptimizerSettings s = OptimizerSettings.defaults(0.01f).withLisa(new Lisa(2, 2));
        PipelineConfig pc = PipelineConfig.defaults(Method.named(optimizer), 0.01f).with(mode, PipelineSchedule.parse(schedule))
                .withSettings(s, lisa);
        List<List<Batch>> data = data(cfg);
        State whole = run(cfg, pc, data, 0, STEPS, null);
        State resumed = run(cfg, pc, data, STOP, STEPS, run(cfg, pc, data, 0, STOP, null));
        assertEquals(whole.losses(), resumed.losses());
        assertEquals(whole.weights().keySet(), resumed.weights().keySet());
        whole.weights().forEach((n, w) -> assertArrayEquals(w, resumed.weights().get(n), n));
        assertEquals(whole.optimizerState().keySet(), resumed.optimizerState().keySet());
        whole.optimizerState().forEach((n, v) -> assertArrayEquals(v, resumed.optimizerState().get(n), n));
    }

    /**
     * RSO, GaLore and LoRA resumed at step 3: GaLore from its weights and projectors, LoRA from the base model and
     * its adapters' values in the state — bit for bit; RSO from weights with B·Pᵀ folded in, B = 0 and the period's
     * subspaces drawn again (inside a period with period 2, at a redraw with period 3, where B's state starts
     * afresh) — equal to float32 rounding, as the fold rounds W + B·Pᵀ once where the whole run keeps them apart.
     */
    @ParameterizedTest(name = "{0}, period {1}, {2} mode, weight decay {3}")
    @CsvSource({"rso, 2, EXACT, 0", "rso, 3, EAGER, 0", "rso, 2, EXACT, 0.1", "galore, 2, EXACT, 0", "lora, 2, EXACT, 0",
            "lora, 2, EAGER, 0.1"})
    void lowRankMethodsResume(String optimizer, int period, UpdateMode mode, float weightDecay) {
        ModelConfig cfg = PipelineEquivalenceTest.GPT2;
        OptimizerSettings d = OptimizerSettings.defaults(0.02f);
        OptimizerSettings s = d.withLowRank(new LowRank(4, period, period, d.lowRank().galoreScale(), d.lowRank().loraAlpha()));
        // With weight decay too: RSO's B, decayed, would shrink in the whole run where the resumed one starts it at 0 again.
        s = new OptimizerSettings(s.lr(), weightDecay, s.adam(), s.clipping(), s.lrSchedule(), s.lisa(), s.lowRank(), s.seed());
        Method method = Method.named(optimizer);
        PipelineConfig pc = PipelineConfig.defaults(method, 0.02f).with(mode, PipelineSchedule.ONE_F_ONE_B).withSettings(s, false);
        List<List<Batch>> data = data(cfg);
        boolean lora = method == Method.LORA;
        State whole = run(cfg, pc, data, 0, STEPS, null);
        State resumed = run(cfg, pc, data, STOP, STEPS, run(cfg, pc, data, 0, STOP, null), lora);
        float tol = method == Method.RSO ? 1e-5f : 0f;
        for (int i = 0; i < STEPS; i++) assertEquals(whole.losses().get(i), resumed.losses().get(i), tol, "loss " + i);
        assertEquals(whole.weights().keySet(), resumed.weights().keySet());
        whole.weights().forEach((n, w) -> assertArrayEquals(w, resumed.weights().get(n), tol, n));
        assertEquals(whole.optimizerState().keySet(), resumed.optimizerState().keySet());
        whole.optimizerState().forEach((n, v) -> assertArrayEquals(v, resumed.optimizerState().get(n), tol, n));
        if (lora) assertTrue(whole.optimizerState().keySet().stream().anyMatch(k -> k.endsWith("lora_B.weight/value")), "adapters in the state");
    }

    @Test
    void stateOfAnotherModelIsRefusedByName() {
        PipelineConfig pc = PipelineConfig.defaults(Method.ADAMW, 0.01f);
        try (Pipeline p = Pipeline.start(PipelineEquivalenceTest.LLAMA, 1, PipelineEquivalenceTest.placement(2), pc,
                PipelineEquivalenceTest.SERIALIZE)) {
            var e = assertThrows(IllegalArgumentException.class,
                    () -> p.restoreOptimizerState(Map.of("h.0.attn.c_attn.weight/steps", new float[] {1})));
            assertTrue(e.getMessage().contains("h.0.attn.c_attn.weight/steps"), e.getMessage());
            var wrongSize = assertThrows(IllegalArgumentException.class, () -> p.restoreOptimizerState(Map.of(
                    "model.norm.weight/steps", new float[] {1}, "model.norm.weight/m", new float[] {1}, "model.norm.weight/v", new float[] {1})));
            assertTrue(wrongSize.getMessage().contains("head: optimizer state model.norm.weight/m has 1 values"), wrongSize.getMessage());
        }
    }
}
