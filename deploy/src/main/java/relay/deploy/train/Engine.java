package relay.deploy.train;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import relay.actors.Pipeline;
import relay.stages.io.CheckpointShard;
import relay.stages.memory.Category;
import relay.stages.train.Batch;

/** What trains: the actor pipeline or the plain loop, behind one face. */
interface Engine extends AutoCloseable {
    /** How one step went. */
    record Step(double loss, double seconds, double bubble, Map<Category, Long> memory) {}

    /** One step; a loss that is no longer finite is an {@link ArithmeticException} (training diverged), any other failure its own. */
    Step step(List<Batch> microbatches);

    /** The mean loss of these batches with the current weights, forward only (between steps). */
    double validationLoss(List<Batch> batches);

    /** The optimizer's state, "parameter/role" → values (between steps). */
    Map<String, float[]> optimizerState();

    /**
     * Writes the weights and optimizer state of checkpoint {@code step} into its directory: returns once the engine
     * may step on, with the files (and their digests) once they are on disk, or the failure that kept them off it.
     * {@code bytes} is about how much that is ({@link Checkpoint#bytes}).
     */
    CompletableFuture<List<CheckpointShard.File>> writeCheckpoint(int step, Path directory, long bytes) throws IOException;

    /** Sets the optimizer's state from {@link #optimizerState()}'s values of an earlier run (before the first step). */
    void restore(Map<String, float[]> state);

    /**
     * One step that first snapshots the state it starts from, after {@code snapshotOf} steps (0: none), into the
     * memory of the nodes (each stage's into its node's and the next node's), sent in the background while it runs.
     * Only a pipeline over several nodes has nodes to keep them: the plain loop has nothing to snapshot into.
     */
    default Step step(List<Batch> microbatches, int snapshotOf) {
        if (snapshotOf == 0) return step(microbatches);
        throw new UnsupportedOperationException("only a pipeline over several nodes snapshots into their memory");
    }

    /** Sets every stage from a snapshot in the nodes' memory that an earlier pipeline on the same nodes took (before the first step). */
    default void restore(Pipeline.Snapshot snapshot) {
        throw new UnsupportedOperationException("only a pipeline over several nodes restores from their memory");
    }

    /** Writes the trace recorded so far, if the engine records one; returns whether it wrote. */
    boolean writeTrace(Path file) throws IOException;

    String describe();

    @Override
    void close();
}
