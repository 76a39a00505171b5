package relay.optimizers.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import relay.stages.data.PackedDataset;
import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.model.Family;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.train.Batch;

/** Every method of the comparison starts from the same weights and sees the same batches; what it reports is counted, not guessed. */
class FinetuneBenchTest {
    static final ModelConfig CFG = new ModelConfig(Family.LLAMA, 40, 16, 2, 4, 2, 4, 32, 16, 1e-5f, 10000.0, false);

    static PackedDataset data(long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] tokens = new int[2000];
        for (int i = 0; i < tokens.length; i++) tokens[i] = i % 7 == 0 ? r.nextInt(CFG.vocabSize()) : (tokens[Math.max(0, i - 1)] * 3 + 1) % CFG.vocabSize();
        return new PackedDataset(tokens, 8, 0.1, seed);
    }

    @Test
    void runsStartFromTheBaseAndRepeatExactly() {
        try (CpuDevice d = new CpuDevice("bench", 1)) {
            PackedDataset pre = data(1), fine = data(2);
            Map<String, float[]> base = FinetuneBench.pretrain(d, CFG, 3, pre, 4, 5, s -> {});
            List<Batch> heldOut = fine.validation(4, 100);
            FinetuneBench.Setup setup = new FinetuneBench.Setup(CFG, base, fine, 4, 6, 1, heldOut, 3, relay.stages.model.Precision.F32);
            double baseLoss;
            try (Model m = Model.initialize(CFG, d, 99)) {
                m.load(base);
                baseLoss = FinetuneBench.loss(m, heldOut);
            }
            FinetuneBench.Run lomo = FinetuneBench.run(d, setup, "lomo", 0.1f, 3);
            FinetuneBench.Run again = FinetuneBench.run(d, setup, "lomo", 0.1f, 3);
            FinetuneBench.Run adamw = FinetuneBench.run(d, setup, "adamw", 0.01f, 3);
            for (FinetuneBench.Run r : List.of(lomo, adamw)) {
                assertEquals(baseLoss, r.validation().get(0)[1], 0, "starts from the pre-trained weights");
                assertEquals(List.of(0.0, 3.0, 6.0), r.validation().stream().map(p -> p[0]).toList());
                assertTrue(r.tokensPerSecond() > 0 && Double.isFinite(r.tokensPerSecond()));
            }
            // The same batches in the same order each run: a repeat is bit-identical.
            assertArrayEquals(lomo.losses(), again.losses(), 0);
            assertEquals(lomo.finalValidation(), again.finalValidation(), 0);
            assertNotEquals(baseLoss, lomo.finalValidation());
            // Parameters by the ledger: exactly the model's floats; LOMO holds no optimizer state, AdamW two moments.
            long floats;
            try (Model m = Model.initialize(CFG, d, 1)) {
                floats = m.parameters().stream().mapToLong(Parameter::size).sum();
            }
            assertEquals(floats * Float.BYTES, lomo.peakBytes().get(Category.PARAMETERS));
            assertEquals(0L, lomo.peakBytes().getOrDefault(Category.OPTIMIZER_STATE, 0L));
            assertTrue(adamw.peakBytes().get(Category.OPTIMIZER_STATE) >= 2 * floats * Float.BYTES);
        }
    }
}
