package relay.optimizers.bench;

import java.util.ArrayList;
import java.util.List;
import relay.optimizers.OptimizerSettings;
import relay.optimizers.Method;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.Device;
import relay.stages.train.Batch;
import relay.stages.train.ReferenceTrainer;
import relay.stages.train.SyntheticData;
import relay.stages.train.TrainingMethod;

/** Every method trains the same freshly initialized model on the same seeded data; the loss curves are kept. */
public final class ConvergeBench {
    private ConvergeBench() {}

    public record Curve(String optimizer, float learningRate, double[] losses, double seconds) {
        /** Mean of the last few losses, steadier than the last one alone. */
        public double finalLoss() {
            int k = Math.min(5, losses.length);
            double s = 0;
            for (int i = losses.length - k; i < losses.length; i++) s += losses[i];
            return s / k;
        }
    }

    public static Curve run(Device device, ModelConfig cfg, String optimizer, int steps, int batch, int seq, long seed) {
        float lr = Method.named(optimizer).defaultLearningRate();
        OptimizerSettings settings = OptimizerSettings.defaults(lr).withLrSchedule(new OptimizerSettings.LrSchedule(Math.max(1, steps / 20), steps));
        SyntheticData data = new SyntheticData(cfg.vocabSize(), batch, seq, 0.1, seed);
        List<Batch> batches = new ArrayList<>();
        for (int i = 0; i < steps; i++) batches.add(data.next());
        double[] losses = new double[steps];
        try (Model model = Model.initialize(cfg, device, seed); TrainingMethod m = Method.named(optimizer).create(model, settings)) {
            ReferenceTrainer t = new ReferenceTrainer(model, m);
            long t0 = System.nanoTime();
            for (int i = 0; i < steps; i++) losses[i] = t.step(List.of(batches.get(i)));
            return new Curve(optimizer, lr, losses, (System.nanoTime() - t0) / 1e9);
        }
    }
}
