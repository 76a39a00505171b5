package relay.deploy.train;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import relay.actors.Coordinator;
import relay.actors.Nodes;
import relay.actors.Pipeline;
import relay.actors.PipelineConfig;
import relay.actors.Placement;
import relay.actors.plan.StageCosts;
import relay.optimizers.LisaPolicy;
import relay.stages.io.CheckpointShard;
import relay.stages.io.HfModelDirectory;
import relay.stages.io.SafeTensors;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;
import relay.stages.train.Batch;

/**
 * Training through the block-actor pipeline: every request is a message, answered by the stages. With LISA
 * and measured stage costs it re-balances: a frozen block computes no weight gradient, so a draw can leave
 * one device with far less work than another; before a step that draws, when another placement would carry
 * the draw's most loaded device at least {@link #GAIN} lighter, the stages are rebuilt there from their own
 * weights and optimizer state (bit for bit the same run, only placed anew).
 */
final class PipelineEngine implements Engine {
    /** The least relative cut of the most loaded device's work that pays for moving the stages. */
    static final double GAIN = 0.05;

    private final Nodes nodes;
    private final ModelConfig cfg;
    private final long seed;
    private final PipelineConfig pc;
    private final StageCosts costs;
    private final LisaPolicy lisa;
    private final boolean tracing;
    private Pipeline pipeline;
    /** The last checkpoint's shards, written in the background: stages move only once they are on disk. */
    private CompletableFuture<List<CheckpointShard.File>> shards = CompletableFuture.completedFuture(List.of());
    private long step;
    private int moves;

    /**
     * @param weights the model directory the stages read their weights from, or null for weights from the seed
     * @param costs   the stages' measured costs, to re-balance LISA's draws by; null to keep the placement
     */
    PipelineEngine(Nodes nodes, ModelConfig cfg, long seed, Path weights, Placement placement, PipelineConfig pc, StageCosts costs) {
        this.nodes = nodes;
        this.cfg = cfg;
        this.seed = seed;
        this.pc = pc;
        this.step = pc.firstStep();
        this.tracing = pc.traceSteps() > 0;
        this.lisa = costs != null && pc.lisa() ? LisaPolicy.of(cfg.layers(), pc.settings()) : null;
        this.costs = costs;
        this.pipeline = Pipeline.start(nodes, cfg, seed, weights, placement, pc);
    }

    @Override
    public Step step(List<Batch> microbatches) {
        return step(microbatches, 0);
    }

    @Override
    public Step step(List<Batch> microbatches, int snapshotOf) {
        rebalance();
        long t0 = System.nanoTime();
        Coordinator.StepResult r = pipeline.step(microbatches, snapshotOf);
        step++;
        if (!r.ok()) {
            throw switch (r.failure()) {
                case DIVERGED -> new ArithmeticException(r.error());
                case NODE_LOST -> pipeline.lost(r.error());
                default -> new IllegalStateException(r.error());
            };
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        Map<Category, Long> mem = new EnumMap<>(Category.class);
        pipeline.memoryPeaks().values().forEach(peaks -> peaks.forEach((c, b) -> mem.merge(c, b, Long::sum)));
        return new Step(r.loss(), seconds, r.bubble(), mem);
    }

    /**
     * Before a step that draws (or the engine's first), the draw's costs decide: the balanced placement for them
     * replaces the current one when it cuts the most loaded device's work by {@link #GAIN}. A traced step keeps
     * its placement (the trace lives in the stages).
     */
    private void rebalance() {
        if (lisa == null || step < pc.traceSteps() || (step != pc.firstStep() && !lisa.redrawsAt((int) step))) return;
        double[] cost = costs.underDraw(lisa.activeBlocks((int) step));
        Placement now = pipeline.placement(), better = Placement.balanced(cost, now.devices()).withReplicas(now.replicas());
        if (better.maxLoad(cost) > (1 - GAIN) * now.maxLoad(cost)) return;
        shards.handle((files, error) -> null).join(); // a failed write is the run's to report, through its own future
        List<SafeTensors.Tensor32> tensors = pipeline.tensors();
        Map<String, float[]> state = pipeline.optimizerState();
        Path dir = null;
        try {
            dir = Files.createTempDirectory("relay-placement");
            HfModelDirectory.save(cfg, tensors, dir);
            pipeline.close();
            pipeline = Pipeline.start(nodes, cfg, seed, dir, better, pc.withFirstStep(step));
            pipeline.restoreOptimizerState(state);
            moves++;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot hand the stages' weights to their new placement: " + e.getMessage(), e);
        } finally {
            if (dir != null) deleteTree(dir);
        }
    }

    private static void deleteTree(Path dir) {
        try (var files = Files.walk(dir)) {
            files.sorted(java.util.Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
        } catch (IOException e) {
            // Left in the temporary directory; nothing of the run depends on it.
        }
    }

    /** How often the stages were placed anew. */
    int moves() {
        return moves;
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
    public CompletableFuture<List<CheckpointShard.File>> writeCheckpoint(int step, Path directory, long bytes) {
        shards = pipeline.writeShards(step, directory, bytes);
        return shards;
    }

    @Override
    public void restore(Map<String, float[]> state) {
        pipeline.restoreOptimizerState(state);
    }

    @Override
    public void restore(Pipeline.Snapshot snapshot) {
        pipeline.restoreSnapshot(snapshot);
    }

    @Override
    public boolean writeTrace(Path file) throws IOException {
        if (!tracing) return false;
        pipeline.writeTrace(file);
        return true;
    }

    @Override
    public String describe() {
        Placement p = pipeline.placement();
        return "actor pipeline " + (p.replicas() == 1 ? "" : "in " + p.replicas() + " replicas ") + "on " + p.devices() + " device(s)"
                + (p.replicas() == 1 ? "" : " each") + " of "
                + java.util.Arrays.toString(pipeline.threadsOfDevice()) + " thread(s), placement "
                + java.util.Arrays.toString(pipeline.placement().deviceOfStage())
                + (moves == 0 ? "" : " (placed anew " + moves + " time(s) for LISA's draws)");
    }

    @Override
    public void close() {
        pipeline.close();
    }
}
