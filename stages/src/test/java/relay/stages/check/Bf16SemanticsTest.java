package relay.stages.check;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import relay.stages.io.HfModelDirectory;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.model.Precision;
import relay.stages.tensor.DType;
import relay.stages.tensor.cpu.CpuDevice;

/**
 * Hugging Face semantics in bfloat16: a BF16 checkpoint's loss, computed by Relay, against the float64 loss of the
 * same model on the same (bfloat16) weights. With float32 activations only the weights are bfloat16, and Relay must
 * agree to float32 rounding; with bfloat16 activations every stored activation is rounded once, and the loss
 * stays within half a bfloat16 step of the float64 one.
 */
class Bf16SemanticsTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"gpt2", "llama"})
    void aBf16CheckpointsLossIsTheFloat64LossOfItsWeights(String family) throws IOException {
        ModelConfig cfg = family.equals("gpt2") ? SelfTest.gpt2() : SelfTest.llama();
        int seq = 6, n = SelfTest.B * seq;
        SplittableRandom rng = new SplittableRandom(7);
        int[] ids = new int[n], targets = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = rng.nextInt(cfg.vocabSize());
            targets[i] = rng.nextInt(cfg.vocabSize());
        }
        Path checkpoint = dir.resolve(family);
        try (CpuDevice d = new CpuDevice("bf16", 1)) {
            // Weights of 0.3 scale so every path carries signal, stored as a BF16 checkpoint.
            try (Model m = Model.initialize(cfg, d, 3, Precision.BF16)) {
                m.parameters().forEach(p -> {
                    float[] v = new float[(int) p.size()];
                    for (int i = 0; i < v.length; i++) v[i] = (float) (0.3 * rng.nextGaussian());
                    p.value().copyFrom(v);
                });
                HfModelDirectory.save(m, checkpoint);
            }
            assertEquals(DType.BF16, HfModelDirectory.storedDtype(checkpoint));
            double reference;
            try (Model widened = HfModelDirectory.load(checkpoint, d, Precision.F32)) {
                Map<String, double[]> weights = SelfTest.parameterVariables(widened.parameters());
                reference = SelfTest.referenceLoss(cfg, weights, ids, targets, null, seq);
            }
            double weightsOnly = loss(checkpoint, d, new Precision(DType.BF16, DType.F32), ids, targets, seq);
            double all = loss(checkpoint, d, Precision.BF16, ids, targets, seq);
            assertEquals(reference, weightsOnly, 1e-5 * Math.abs(reference), "bf16 weights, float32 math and activations");
            // Each stored activation is off by at most half a bfloat16 step (2^-9 relative), in both directions: the loss
            // stays within that of its own value (measured: 3e-4 relative on both models).
            assertEquals(reference, all, 0x1p-9 * Math.abs(reference), "bf16 weights and activations");
            assertTrue(all != weightsOnly, "bfloat16 activations round something");
        }
    }

    private static double loss(Path checkpoint, CpuDevice d, Precision precision, int[] ids, int[] targets, int seq) {
        try (Model m = HfModelDirectory.load(checkpoint, d, precision)) {
            return m.forwardBackward(ids, targets, SelfTest.B, seq, 1f, stage -> null);
        }
    }
}
