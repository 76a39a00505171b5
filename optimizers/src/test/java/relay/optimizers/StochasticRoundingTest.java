package relay.optimizers;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import relay.stages.layers.GradientSink;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.model.Precision;
import relay.stages.tensor.Bf16;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.train.Batch;
import relay.stages.train.SyntheticData;

/**
 * Why bf16 updates round stochastically: on llama-tiny, SGD steps far below half a bfloat16 step of the weights
 * vanish under round-to-nearest (the weights stall and the loss with them), while stochastic rounding follows the
 * float32 run. Each run is the same model, data and plain SGD applied inside backward; only how the updated weight
 * is stored differs.
 */
class StochasticRoundingTest {
    private static final ModelConfig CFG = ModelConfig.named("llama-tiny");
    private static final int STEPS = 60;
    private static final float LR = 0.0005f;

    enum Storage { F32, BF16_NEAREST, BF16_STOCHASTIC }

    /** The loss of the repeated batch after STEPS updates, less its loss before the first. */
    private static double lossDrop(Storage storage) {
        Precision precision = storage == Storage.F32 ? Precision.F32 : Precision.BF16;
        Batch batch = new SyntheticData(CFG.vocabSize(), 4, 32, 0.1, 3).next();
        try (CpuDevice d = new CpuDevice("sr", 1); Model m = Model.initialize(CFG, d, 11, precision)) {
            double first = 0, last = 0;
            for (int step = 0; step < STEPS; step++) {
                int s = step;
                GradientSink sgd = (p, g) -> {
                    Runnable update = () -> d.axpy(-LR, g, p.value());
                    // Round to nearest is what writing into the bf16 weight itself does; update() rounds stochastically.
                    if (storage == Storage.BF16_NEAREST) update.run();
                    else p.update(Bf16.updateKey(1, s, 0, p.name()), update);
                };
                double loss = m.forwardBackward(batch.inputs(), batch.targets(), batch.batch(), batch.seq(), 1f, stage -> sgd);
                if (step == 0) first = loss;
                last = loss;
            }
            return first - last;
        }
    }

    @Test
    void roundToNearestStallsWhereStochasticRoundingFollowsFloat32() {
        double f32 = lossDrop(Storage.F32), nearest = lossDrop(Storage.BF16_NEAREST), stochastic = lossDrop(Storage.BF16_STOCHASTIC);
        String all = "loss drop over " + STEPS + " steps: f32 " + f32 + ", bf16 nearest " + nearest + ", bf16 stochastic " + stochastic;
        assertTrue(f32 > 0.05, "float32 learns: " + all);
        assertTrue(Math.abs(stochastic - f32) < 0.2 * f32, "stochastic rounding follows float32: " + all);
        assertTrue(nearest < 0.5 * f32, "round to nearest stalls: " + all);
    }
}
