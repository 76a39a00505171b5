package relay.optimizers.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.IntConsumer;
import relay.optimizers.Method;
import relay.optimizers.OptimizerSettings;
import relay.stages.data.PackedDataset;
import relay.stages.memory.Category;
import relay.stages.memory.MemoryLedger;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.model.Precision;
import relay.stages.tensor.Device;
import relay.stages.train.Batch;
import relay.stages.train.ReferenceTrainer;
import relay.stages.train.TrainingMethod;

/**
 * Fine-tuning compared method by method, as the LOMO, LISA, RSO and GaLore papers compare them: every method
 * starts from the same pre-trained weights, trains on the same batches in the same order for the same number
 * of tokens, and is evaluated on the same held-out sequences. The plain loop runs them (the pipeline equals
 * it in exact mode), so peak memory is the device ledger's, category by category.
 */
public final class FinetuneBench {
    private FinetuneBench() {}

    /**
     * One method's fine-tuning: training loss per step, (step, loss) on the held-out set every few steps and at
     * the end, the ledger's peaks over the run, and training tokens/s (evaluation and the first step left out).
     */
    public record Run(String optimizer, float lr, double[] losses, List<double[]> validation, Map<Category, Long> peakBytes,
                      long peakTotal, double tokensPerSecond) {
        public double finalValidation() {
            return validation.get(validation.size() - 1)[1];
        }
    }

    /**
     * What every run shares: the model, the weights it starts from, its data and its evaluation, and how the model is
     * stored while it is fine-tuned (a bfloat16 model starts from the base weights rounded to nearest).
     */
    public record Setup(ModelConfig model, Map<String, float[]> base, PackedDataset train, int batch, int steps, int warmup,
                        List<Batch> heldOut, int evalEvery, Precision precision) {}

    /**
     * Pre-trains the model from the seed with AdaLomo (warm-up then cosine decay) on {@code data}; returns its
     * weights by name. {@code progress} hears each finished step.
     */
    public static Map<String, float[]> pretrain(Device device, ModelConfig cfg, long seed, PackedDataset data, int batch, int steps,
                                                IntConsumer progress) {
        OptimizerSettings s = OptimizerSettings.defaults(Method.ADALOMO.defaultLearningRate())
                .withLrSchedule(new OptimizerSettings.LrSchedule(Math.max(1, steps / 20), steps));
        try (Model model = Model.initialize(cfg, device, seed); TrainingMethod m = Method.ADALOMO.create(model, s)) {
            ReferenceTrainer t = new ReferenceTrainer(model, m);
            for (int i = 0; i < steps; i++) {
                t.step(List.of(data.next(batch)));
                progress.accept(i + 1);
            }
            return model.values();
        }
    }

    /** Fine-tunes the setup's base weights with one method at one learning rate. */
    public static Run run(Device device, Setup setup, String optimizer, float lr, long seed) {
        Method method = Method.named(optimizer);
        OptimizerSettings s = OptimizerSettings.defaults(lr).withLrSchedule(new OptimizerSettings.LrSchedule(setup.warmup(), setup.steps()));
        MemoryLedger ledger = device.memory();
        setup.train().seek(new PackedDataset.Position(0, 0));
        try (Model model = Model.initialize(setup.model(), device, seed, setup.precision())) {
            model.load(setup.base());
            ledger.resetPeaks();
            double[] losses = new double[setup.steps()];
            List<double[]> validation = new ArrayList<>();
            validation.add(new double[] {0, loss(model, setup.heldOut())});
            long timed = 0;
            try (TrainingMethod m = method.create(model, s)) {
                ReferenceTrainer t = new ReferenceTrainer(model, m);
                for (int i = 0; i < setup.steps(); i++) {
                    Batch b = setup.train().next(setup.batch());
                    long t0 = System.nanoTime();
                    losses[i] = t.step(List.of(b));
                    if (i > 0) timed += System.nanoTime() - t0;
                    if ((i + 1) % setup.evalEvery() == 0 || i + 1 == setup.steps()) validation.add(new double[] {i + 1, loss(model, setup.heldOut())});
                }
                // The peaks before closing the method, which merges adapters.
                long tokens = (long) (setup.steps() - 1) * setup.batch() * setup.train().seq();
                return new Run(optimizer, lr, losses, validation, ledger.peaks(), ledger.peakTotal(),
                        timed == 0 ? Double.NaN : tokens / (timed / 1e9));
            }
        }
    }

    /** Mean loss over the batches, forward only, with the model as it computes now (low-rank terms included). */
    static double loss(Model model, List<Batch> batches) {
        double sum = 0;
        for (Batch b : batches) sum += model.loss(b.inputs(), b.targets(), b.batch(), b.seq());
        return sum / batches.size();
    }
}
