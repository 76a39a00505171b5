package relay.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import relay.optimizers.Method;
import relay.optimizers.OptimizerSettings;
import relay.stages.model.ModelConfig;
import relay.stages.model.Precision;
import relay.stages.tensor.Bf16;
import relay.stages.train.Batch;

/**
 * The pipeline against the plain loop with bfloat16 weights and activations: activations and their gradients cross
 * devices (as Protobuf, serialize-messages on) in bfloat16, the loop rounds the residual stream at the same places,
 * and updates round stochastically with the same keys — so the two agree bit for bit, as in float32.
 */
class Bf16PipelineEquivalenceTest {

    /** Eager LOMO and AdaLomo with one microbatch: the loop's in-backward update, for every schedule, on LLaMA and GPT-2. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("relay.actors.PipelineEquivalenceTest#schedules")
    void inBackwardMethodsEqualTheLoop(PipelineSchedule schedule) {
        for (Method method : List.of(Method.LOMO, Method.ADALOMO)) {
            float lr = method == Method.LOMO ? 0.3f : 0.02f;
            OptimizerSettings s = OptimizerSettings.defaults(lr);
            for (ModelConfig cfg : List.of(PipelineEquivalenceTest.LLAMA, PipelineEquivalenceTest.GPT2)) {
                List<List<Batch>> data = PipelineEquivalenceTest.data(cfg, 1);
                PipelineEquivalenceTest.Run want = PipelineEquivalenceTest.reference(cfg, data, m -> method.create(m, s), Precision.BF16);
                Placement pl = cfg == PipelineEquivalenceTest.LLAMA ? PipelineEquivalenceTest.placement(3) : new Placement(2, new int[] {0, 0, 1, 1, 1});
                PipelineEquivalenceTest.Run got = PipelineEquivalenceTest.pipeline(cfg, data, pl, PipelineConfig.defaults(method, lr)
                        .with(UpdateMode.EAGER, schedule).withSettings(s, false).withPrecision(Precision.BF16));
                assertBf16(want);
                assertWithinRounding(want, got);
            }
        }
    }

    /**
     * Equal to float32 rounding before the bf16 rounding, as in float32 (where these runs agree to 2e-6, not bit for
     * bit): a weight rarely lands on the other side of a rounding threshold, and is then one bfloat16 step off.
     */
    private static void assertWithinRounding(PipelineEquivalenceTest.Run want, PipelineEquivalenceTest.Run got) {
        for (int s = 0; s < want.losses().length; s++) assertEquals(want.losses()[s], got.losses()[s], 1e-4, "loss of step " + s);
        long elements = 0, off = 0;
        for (var e : want.weights().entrySet()) {
            float[] w = e.getValue(), g = got.weights().get(e.getKey());
            for (int i = 0; i < w.length; i++) {
                elements++;
                if (w[i] == g[i]) continue;
                off++;
                assertTrue(Math.abs(w[i] - g[i]) <= Math.ulp(w[i]) * 65536 * 1.01f, e.getKey() + "[" + i + "]: " + w[i] + " vs " + g[i]);
            }
        }
        assertTrue(off <= elements / 100, off + " of " + elements + " weights differ");
    }

    /** Exact mode with two microbatches on two devices: one AdamW step of the loop over both, the update rounded once. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("relay.actors.PipelineEquivalenceTest#schedules")
    void exactAdamwEqualsTheLoop(PipelineSchedule schedule) {
        OptimizerSettings s = OptimizerSettings.defaults(0.01f);
        List<List<Batch>> data = PipelineEquivalenceTest.data(PipelineEquivalenceTest.LLAMA, 2);
        PipelineEquivalenceTest.Run want = PipelineEquivalenceTest.reference(PipelineEquivalenceTest.LLAMA, data,
                m -> Method.named("adamw").create(m, s), Precision.BF16);
        PipelineEquivalenceTest.Run got = PipelineEquivalenceTest.pipeline(PipelineEquivalenceTest.LLAMA, data, PipelineEquivalenceTest.placement(2),
                PipelineConfig.defaults(Method.ADAMW, 0.01f).with(UpdateMode.EXACT, schedule).withPrecision(Precision.BF16));
        assertBf16(want);
        PipelineEquivalenceTest.assertSame(want, got, 0f);
    }

    /**
     * RSO, GaLore and LoRA in exact mode with one microbatch, on LLaMA: RSO's redraws (every 2 steps here) fold B·Pᵀ
     * into the bf16 weights as an update, rounded stochastically alike in both.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("relay.actors.PipelineEquivalenceTest#lowRankMethods")
    void lowRankMethodsEqualTheLoop(Method method) {
        OptimizerSettings s = PipelineEquivalenceTest.lowRankSettings(0.02f);
        List<List<Batch>> data = PipelineEquivalenceTest.data(PipelineEquivalenceTest.LLAMA, 1);
        PipelineEquivalenceTest.Run want = PipelineEquivalenceTest.reference(PipelineEquivalenceTest.LLAMA, data, m -> method.create(m, s),
                Precision.BF16);
        PipelineEquivalenceTest.Run got = PipelineEquivalenceTest.pipeline(PipelineEquivalenceTest.LLAMA, data,
                PipelineEquivalenceTest.lowRankPlacement(PipelineEquivalenceTest.LLAMA), PipelineConfig.defaults(method, 0.02f)
                        .with(UpdateMode.EXACT, PipelineSchedule.ONE_F_ONE_B).withSettings(s, false).withPrecision(Precision.BF16));
        // The weights reported are those the model computes with, W + B·A in float32 for RSO and LoRA: not bf16 values.
        assertTrue(want.losses()[want.losses().length - 1] != want.losses()[0], "the loss moved");
        PipelineEquivalenceTest.assertSame(want, got, 0f);
    }

    /** Every weight the run ends with is a bfloat16 value, and training moved them (the comparison is not of the start). */
    private static void assertBf16(PipelineEquivalenceTest.Run run) {
        int moved = 0;
        for (var e : run.weights().entrySet()) {
            for (float w : e.getValue()) {
                assertEquals(Float.floatToIntBits(w), Float.floatToIntBits(Bf16.widen(Bf16.round(w))), e.getKey() + " holds a non-bf16 value");
            }
        }
        for (double loss : run.losses()) assertTrue(Double.isFinite(loss));
        assertTrue(run.losses()[run.losses().length - 1] != run.losses()[0], "the loss moved");
    }
}
