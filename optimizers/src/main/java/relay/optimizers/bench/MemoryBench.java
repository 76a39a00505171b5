package relay.optimizers.bench;

import java.util.List;
import java.util.Map;
import relay.optimizers.OptimizerSettings;
import relay.optimizers.Method;
import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.memory.MemoryLedger;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.model.Precision;
import relay.stages.tensor.Device;
import relay.stages.train.ReferenceTrainer;
import relay.stages.train.SyntheticData;
import relay.stages.train.TrainingMethod;

/**
 * Trains a model for a few steps with one method on the plain loop and reports the peak bytes of every
 * memory category, as the device's ledger counted them, with throughput over the steps after the first.
 */
public final class MemoryBench {
    private MemoryBench() {}

    public record Result(String optimizer, String dtype, Map<Category, Long> peakBytes, long totalPeakBytes,
                         long largestParameterBytes, double tokensPerSecond, double lastLoss) {}

    public static Result run(Device device, ModelConfig cfg, String optimizer, OptimizerSettings settings,
                             int batch, int seq, int steps, Precision precision) {
        if (steps < 2) throw new IllegalArgumentException("memory bench needs at least 2 steps (the first allocates state)");
        MemoryLedger ledger = device.memory();
        try (Model model = Model.initialize(cfg, device, 1, precision)) {
            long largest = model.parameters().stream().mapToLong(p -> p.value().bytes()).max().orElse(0);
            SyntheticData data = new SyntheticData(cfg.vocabSize(), batch, seq, 0.1, 7);
            ledger.resetPeaks();
            double loss = 0;
            long timed = 0;
            try (TrainingMethod method = Method.named(optimizer).create(model, settings)) {
                ReferenceTrainer trainer = new ReferenceTrainer(model, method);
                for (int s = 0; s < steps; s++) {
                    long t0 = System.nanoTime();
                    loss = trainer.step(List.of(data.next()));
                    if (s > 0) timed += System.nanoTime() - t0;
                }
                // Read the peaks before closing the method (which may merge adapters and allocate nothing more).
                Map<Category, Long> peaks = ledger.peaks();
                long total = ledger.peakTotal();
                double tps = (double) (steps - 1) * batch * seq / (timed / 1e9);
                return new Result(optimizer, precision.weights().key(), peaks, total, largest, tps, loss);
            }
        }
    }
}
