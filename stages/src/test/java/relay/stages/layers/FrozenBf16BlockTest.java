package relay.stages.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import relay.stages.memory.Category;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.model.Precision;
import relay.stages.tensor.DType;
import relay.stages.tensor.Tensor;
import relay.stages.tensor.cpu.CpuDevice;

/**
 * In bfloat16 a block frozen by LISA passes back the same input gradient as when it trains: its layers round the
 * gradient they take to bfloat16 as trained ones do (and multiply two bfloat16 operands), rather than multiplying the
 * float32 gradient, which made a block's input gradient depend on whether it was drawn that period.
 */
class FrozenBf16BlockTest {
    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "gpt2-tiny"})
    void aFrozenBlockPassesBackWhatATrainedOneDoes(String preset) {
        ModelConfig cfg = ModelConfig.named(preset);
        int batch = 2, seq = 8, rows = batch * seq, dim = cfg.hidden();
        try (CpuDevice d = new CpuDevice("bf16", 1); Model m = Model.initialize(cfg, d, 3, Precision.BF16)) {
            TransformerBlock block = m.blocks().get(0);
            float[] trained = inputGradient(d, block, true, rows, dim, batch, seq);
            float[] frozen = inputGradient(d, block, false, rows, dim, batch, seq);
            assertEquals(rows * dim, frozen.length);
            assertArrayEquals(trained, frozen, preset + ": bit for bit");
        }
    }

    private static float[] inputGradient(CpuDevice d, TransformerBlock block, boolean trainable, int rows, int dim, int batch, int seq) {
        block.setTrainable(trainable);
        Random r = new Random(11);
        float[] xv = new float[rows * dim], gv = new float[rows * dim];
        for (int i = 0; i < xv.length; i++) {
            xv[i] = (float) r.nextGaussian();
            gv[i] = (float) (r.nextGaussian() * 1e-2);
        }
        try (Tensor x = d.allocate(Category.ACTIVATIONS, DType.BF16, rows, dim); Tensor dOut = d.allocate(Category.ACTIVATIONS, DType.BF16, rows, dim)) {
            x.copyFrom(xv);
            dOut.copyFrom(gv);
            TransformerBlock.Forward f = block.forward(x, batch, seq);
            f.output().close();
            try (Tensor dx = block.backward(f, dOut, null)) {
                return dx.toArray();
            }
        }
    }
}
