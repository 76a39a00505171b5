package relay.deploy.train;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import relay.actors.plan.Planner;
import relay.optimizers.Method;
import relay.optimizers.OptimizerSettings;
import relay.stages.io.CheckpointShard;
import relay.stages.io.HfModelDirectory;
import relay.stages.io.SafeTensors;
import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.model.LmHead;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.model.Precision;
import relay.stages.tensor.Device;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.train.Batch;
import relay.stages.train.ReferenceTrainer;
import relay.stages.train.TrainingMethod;

/**
 * Training on the plain loop, for the method that holds every gradient (classic SGD), on a device of every core.
 * Validation runs on a one-thread copy of the model.
 */
final class LoopEngine implements Engine {
    private final Device device;
    private final Model model;
    private final TrainingMethod method;
    private final ReferenceTrainer trainer;
    private final Method name;
    private final Device evalDevice;
    private final Model evalModel;
    private final Precision precision;

    /**
     * @param weights   the model directory to start from, or null for weights from the seed
     * @param recompute whether blocks keep only their input and recompute their activations in backward
     */
    LoopEngine(ModelConfig cfg, long seed, Method name, OptimizerSettings settings, Path weights, int firstStep, boolean recompute,
               Precision precision) {
        this(CpuDevice.allCores(), new CpuDevice("eval", 1), cfg, seed, name, settings, weights, firstStep, recompute, precision);
    }

    /** The loop on these devices: one to train on, and one for its evaluation copy. */
    private LoopEngine(Device device, Device evalDevice, ModelConfig cfg, long seed, Method name, OptimizerSettings settings, Path weights,
                       int firstStep, boolean recompute, Precision precision) {
        this.name = name;
        this.device = device;
        this.evalDevice = evalDevice;
        this.precision = precision;
        model = weights == null ? Model.initialize(cfg, device, seed, precision) : HfModelDirectory.load(weights, device, precision);
        model.blocks().forEach(b -> b.setRecompute(recompute));
        evalModel = Model.initialize(cfg, evalDevice, seed, precision);
        method = name.create(model, settings);
        trainer = new ReferenceTrainer(model, method, firstStep);
    }

    /**
     * The peak bytes by category of the loop's devices (its own and its evaluation copy's) over building it and one
     * step, planned on devices that hold no values: what the ledgers of a run with these settings count.
     */
    static Map<Category, Long> planned(TrainConfig c, ModelConfig cfg) {
        try (LoopEngine e = new LoopEngine(Planner.MEMORY_ONLY.open(0, 1), Planner.MEMORY_ONLY.open(1, 1), cfg, c.run().seed(),
                c.optimizer().method(), c.optimizerSettings(), null, 0, c.pipeline().recompute(), c.precision())) {
            Map<Category, Long> peaks = new EnumMap<>(e.step(Planner.batches(cfg, c.microbatchSize(), c.run().seq(),
                    c.pipeline().microbatches())).memory());
            e.evalDevice.memory().peaks().forEach((category, bytes) -> peaks.merge(category, bytes, Long::sum));
            return peaks;
        }
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
    public double validationLoss(List<Batch> batches) {
        evalModel.load(model.values());
        // The mean over every counted target, each batch weighed as in a training step (and as the pipeline evaluates).
        int all = batches.stream().mapToInt(b -> LmHead.counted(b.targets())).sum();
        double sum = 0;
        for (Batch b : batches) {
            sum += LmHead.weightInStep(LmHead.counted(b.targets()), batches.size(), all)
                    * evalModel.loss(b.inputs(), b.targets(), b.positions(), b.batch(), b.seq());
        }
        return sum / batches.size();
    }

    /** Every parameter as the model computes with it (low-rank terms folded in), named as in a Hugging Face directory. */
    private List<SafeTensors.Tensor32> weights() {
        Map<String, float[]> values = model.values();
        List<SafeTensors.Tensor32> out = new ArrayList<>();
        for (Parameter p : model.parameters()) {
            float[] v = values.get(p.name());
            if (v != null) out.add(new SafeTensors.Tensor32(p.name(), p.value().shape(), v));
        }
        return out;
    }

    @Override
    public Map<String, float[]> optimizerState() {
        return method.optimizerState();
    }

    /** The plain loop writes the whole model as one part, before it steps on. */
    @Override
    public CompletableFuture<List<CheckpointShard.File>> writeCheckpoint(int step, Path directory, long bytes) throws IOException {
        return CompletableFuture.completedFuture(new CheckpointShard("", model.config(), name.key(), precision.weights(), weights(), optimizerState())
                .write(directory));
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
    public String describe() {
        return "plain loop (" + name.key() + ") on " + device;
    }

    @Override
    public void close() {
        method.close();
        model.close();
        evalModel.close();
        device.close();
        evalDevice.close();
    }
}
