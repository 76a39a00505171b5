package relay.stages.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import relay.stages.layers.GradientSink;
import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.tensor.DType;
import relay.stages.tensor.Tensor;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.train.GradientAccumulator;

/**
 * The head's weight gradient left until after the blocks' backward (bfloat16 heads, where no sum of it is held yet):
 * the same loss, input gradient and weight gradient as computed at once, bit for bit, while no gradient memory exists
 * between the two; a float32 head, or a sink already summing the weight, computes it at once.
 */
class LmHeadDeferredWeightTest {
    static final int ROWS = 24;

    /** Copies every gradient handed over, by parameter name. */
    static final class Collect implements GradientSink {
        final Map<String, float[]> got = new LinkedHashMap<>();

        @Override
        public void accept(Parameter p, Tensor g) {
            got.put(p.name(), g.toArray());
        }
    }

    private static Tensor input(CpuDevice d, DType dtype, int cols) {
        Tensor x = d.empty(Category.ACTIVATIONS, dtype, ROWS, cols);
        SplittableRandom r = new SplittableRandom(5);
        float[] v = new float[ROWS * cols];
        for (int i = 0; i < v.length; i++) v[i] = (float) r.nextGaussian();
        d.upload(v, x);
        return x;
    }

    private static int[] targets(int vocab) {
        SplittableRandom r = new SplittableRandom(9);
        int[] t = new int[ROWS];
        for (int i = 0; i < ROWS; i++) t[i] = i % 7 == 3 ? -100 : r.nextInt(vocab);
        return t;
    }

    @Test
    void aDeferredWeightGradientEqualsTheImmediateOneAndHoldsNoGradientMeanwhile() {
        for (boolean tied : new boolean[] {true, false}) {
            ModelConfig cfg = tied
                    ? new ModelConfig(Family.GPT2, 301, 32, 2, 2, 2, 16, 64, 16, 1e-5f, 0, true)
                    : new ModelConfig(Family.LLAMA, 301, 32, 2, 4, 2, 8, 48, 16, 1e-5f, 10000.0, false);
            try (CpuDevice d = new CpuDevice("head", 2)) {
                Model model = Model.initialize(cfg, d, 17, Precision.BF16);
                LmHead head = model.head();
                int[] t = targets(cfg.vocabSize());
                Collect now = new Collect(), later = new Collect();
                float[] dxNow, dxLater;
                double lossNow, lossLater;
                try (Tensor x = input(d, DType.BF16, cfg.hidden())) {
                    LmHead.Result r = head.lossAndBackward(x, t, 0.5f, now, false);
                    assertNull(r.weightGradient(), "not deferred unless asked");
                    try (Tensor dx = r.dx()) {
                        dxNow = dx.toArray();
                    }
                    lossNow = r.loss();
                    assertTrue(head.defersWeightGradient(x, later));
                    LmHead.Result s = head.lossAndBackward(x, t, 0.5f, later, true);
                    assertNotNull(s.weightGradient());
                    assertFalse(later.got.containsKey(head.weight().name()), "the weight's gradient waits");
                    assertEquals(0, d.memory().current(Category.GRADIENTS), "no gradient memory between B and W");
                    try (Tensor dx = s.dx()) {
                        dxLater = dx.toArray();
                    }
                    lossLater = s.loss();
                    s.weightGradient().run();
                }
                assertEquals(lossNow, lossLater);
                assertArrayEquals(dxNow, dxLater);
                assertEquals(now.got.keySet(), later.got.keySet());
                for (String name : now.got.keySet()) assertArrayEquals(now.got.get(name), later.got.get(name), name);
                assertTrue(now.got.containsKey(head.weight().name()));
                model.close();
                assertEquals(0, d.memory().currentTotal(), "the deferred work freed what it kept");
            }
        }
    }

    @Test
    void aFloat32HeadOrAHeldSumComputesTheWeightGradientAtOnce() {
        ModelConfig cfg = new ModelConfig(Family.LLAMA, 301, 32, 2, 4, 2, 8, 48, 16, 1e-5f, 10000.0, false);
        try (CpuDevice d = new CpuDevice("head", 2)) {
            Model f32 = Model.initialize(cfg, d, 17, Precision.F32);
            try (Tensor x = input(d, DType.F32, cfg.hidden())) {
                assertFalse(f32.head().defersWeightGradient(x, new Collect()));
                LmHead.Result r = f32.head().lossAndBackward(x, targets(cfg.vocabSize()), 1f, new Collect(), true);
                assertNull(r.weightGradient());
                r.dx().close();
            }
            f32.close();
            Model bf16 = Model.initialize(cfg, d, 17, Precision.BF16);
            try (Tensor x = input(d, DType.BF16, cfg.hidden()); GradientAccumulator sums = new GradientAccumulator()) {
                assertTrue(bf16.head().defersWeightGradient(x, sums), "no sum yet");
                sums.sumFor(bf16.head().weight());
                assertFalse(bf16.head().defersWeightGradient(x, sums), "the sum exists: nothing to save");
            }
            bf16.close();
        }
    }

    /** A target past the vocabulary fails the head's backward, and leaves no gradient memory behind (a fresh one freed). */
    @Test
    void aFailedBackwardLeavesNoGradientBehind() {
        ModelConfig cfg = new ModelConfig(Family.LLAMA, 301, 32, 2, 4, 2, 8, 48, 16, 1e-5f, 10000.0, false);
        try (CpuDevice d = new CpuDevice("head", 1); Model m = Model.initialize(cfg, d, 17, Precision.F32); Tensor x = input(d, DType.F32, cfg.hidden())) {
            int[] bad = targets(cfg.vocabSize());
            bad[5] = cfg.vocabSize();
            assertThrows(RuntimeException.class, () -> m.head().lossAndBackward(x, bad, 1f, new Collect(), false));
            assertEquals(0, d.memory().current(Category.GRADIENTS), "the fresh weight gradient freed");
        }
    }
}
