package relay.deploy.train;

import com.typesafe.config.ConfigFactory;
import java.io.IOException;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import relay.actors.Coordinator;
import relay.actors.Pipeline;
import relay.actors.PipelineConfig;
import relay.actors.Placement;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.train.Batch;

/** Training through the block-actor pipeline. */
final class PipelineEngine implements Engine {
    private final Pipeline pipeline;
    private double[] busy = new double[0];
    private final int traceSteps;

    PipelineEngine(ModelConfig cfg, long seed, Placement placement, PipelineConfig pc, Map<String, float[]> initial) {
        this.pipeline = Pipeline.start(cfg, seed, placement, pc, ConfigFactory.empty());
        this.traceSteps = (int) Math.min(Integer.MAX_VALUE, pc.traceSteps());
        if (initial != null) pipeline.loadWeights(initial);
    }

    @Override
    public Step step(List<Batch> microbatches) {
        long t0 = System.nanoTime();
        Coordinator.StepResult r = pipeline.step(microbatches);
        if (!r.ok()) throw new IllegalStateException(r.error());
        double seconds = (System.nanoTime() - t0) / 1e9;
        busy = new double[r.busyNanos().length];
        for (int d = 0; d < busy.length; d++) busy[d] = r.busyNanos()[d] / (double) r.wallNanos();
        Map<Category, Long> mem = new EnumMap<>(Category.class);
        for (CpuDevice d : pipeline.devices()) d.memory().peaks().forEach((c, b) -> mem.merge(c, b, Long::sum));
        pipeline.devices().forEach(d -> d.memory().resetPeaks());
        return new Step(r.loss(), seconds, r.bubble(), mem);
    }

    @Override
    public Map<String, float[]> weights() {
        return pipeline.weights();
    }

    @Override
    public Map<String, float[]> optimizerState() {
        return pipeline.optimizerState();
    }

    @Override
    public void restore(Map<String, float[]> state) {
        pipeline.restoreOptimizerState(state);
    }

    @Override
    public boolean writeTrace(Path file) throws IOException {
        if (traceSteps == 0) return false;
        pipeline.writeTrace(file);
        return true;
    }

    @Override
    public double[] busy() {
        return busy.clone();
    }

    @Override
    public String describe() {
        return "actor pipeline on " + pipeline.placement().devices() + " device(s), placement "
                + java.util.Arrays.toString(pipeline.placement().deviceOfStage());
    }

    @Override
    public void close() {
        pipeline.close();
    }
}
