package relay.deploy.train;

import java.io.IOException;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import relay.actors.Coordinator;
import relay.actors.Nodes;
import relay.actors.NodesUnavailable;
import relay.actors.Pipeline;
import relay.actors.PipelineConfig;
import relay.actors.Placement;
import relay.actors.StageEvent;
import relay.stages.io.CheckpointShard;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;
import relay.stages.train.Batch;

/** Training through the block-actor pipeline: every request is a message, answered by the stages. */
final class PipelineEngine implements Engine {
    private final Pipeline pipeline;
    private final boolean tracing;

    /** @param weights the model directory the stages read their weights from, or null for weights from the seed */
    PipelineEngine(Nodes nodes, ModelConfig cfg, long seed, Path weights, Placement placement, PipelineConfig pc) {
        this.pipeline = Pipeline.start(nodes, cfg, seed, weights, placement, pc);
        this.tracing = pc.traceSteps() > 0;
    }

    @Override
    public Step step(List<Batch> microbatches) {
        long t0 = System.nanoTime();
        Coordinator.StepResult r = pipeline.step(microbatches);
        if (!r.ok()) {
            throw switch (r.failure()) {
                case DIVERGED -> new ArithmeticException(r.error());
                case NODE_LOST -> new NodesUnavailable(r.error());
                default -> new IllegalStateException(r.error());
            };
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        Map<Category, Long> mem = new EnumMap<>(Category.class);
        pipeline.memoryPeaks().values().forEach(peaks -> peaks.forEach((c, b) -> mem.merge(c, b, Long::sum)));
        return new Step(r.loss(), seconds, r.bubble(), mem);
    }

    @Override
    public double validationLoss(List<Batch> batches) {
        return pipeline.evaluate(batches);
    }

    @Override
    public Map<String, float[]> optimizerState() {
        return pipeline.optimizerState();
    }

    /** Each stage writes its own shard, in the background on its node, while the next steps run. */
    @Override
    public CompletableFuture<List<CheckpointShard.File>> writeCheckpoint(int step, Path directory) {
        return pipeline.writeShards(step, directory);
    }

    @Override
    public void restore(Map<String, float[]> state) {
        pipeline.restoreOptimizerState(state);
    }

    @Override
    public boolean writeTrace(Path file) throws IOException {
        if (!tracing) return false;
        pipeline.writeTrace(file);
        return true;
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
