package relay.deploy.train;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import relay.optimizers.OptimizerSettings;
import relay.optimizers.Method;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.train.Batch;
import relay.stages.train.ReferenceTrainer;
import relay.stages.train.TrainingMethod;

/** Training on the plain loop, for methods that change the model's layers (RSO, GaLore, LoRA) or classic ones. */
final class LoopEngine implements Engine {
    private final CpuDevice device;
    private final Model model;
    private final TrainingMethod method;
    private final ReferenceTrainer trainer;
    private final String optimizer;

    LoopEngine(ModelConfig cfg, long seed, String optimizer, OptimizerSettings settings, Map<String, float[]> initial,
               int firstStep) {
        this.optimizer = optimizer;
        device = CpuDevice.allCores();
        model = Model.initialize(cfg, device, seed);
        if (initial != null) model.load(initial);
        method = Method.named(optimizer).create(model, settings);
        trainer = new ReferenceTrainer(model, method, firstStep);
    }

    @Override
    public Step step(List<Batch> microbatches) {
        long t0 = System.nanoTime();
        double loss = trainer.step(microbatches);
        Step s = new Step(loss, (System.nanoTime() - t0) / 1e9, 0, device.memory().peaks());
        device.memory().resetPeaks();
        return s;
    }

    @Override
    public Map<String, float[]> weights() {
        return model.values();
    }

    @Override
    public Map<String, float[]> optimizerState() {
        return method.optimizerState();
    }

    @Override
    public void restore(Map<String, float[]> state) {
        method.restore(model, state);
    }

    @Override
    public boolean writeTrace(Path file) {
        return false;
    }

    @Override
    public double[] busy() {
        return new double[0];
    }

    @Override
    public String describe() {
        return "plain loop (" + optimizer + ") on " + device;
    }

    @Override
    public void close() {
        method.close();
        model.close();
        device.close();
    }
}
