package relay.actors;

import java.nio.file.Path;
import relay.stages.model.ModelConfig;

/**
 * Everything a stage actor builds itself from, small enough to travel to another JVM: the model's shape,
 * which stage it is and of which replica of the pipeline, where its weights come from (fresh from the seed, or read from a model directory:
 * a Hugging Face model or a checkpoint), the placement of every stage on devices, how the pipeline trains,
 * and the wall-clock instant its trace counts from.
 *
 * @param weights a model directory whose tensors the stage reads, or null for weights initialized from the seed
 */
public record StageSpec(int stage, int replica, ModelConfig model, long seed, Path weights, Placement placement, PipelineConfig config,
                        long traceEpochMicros) {

    public StageSpec {
        if (placement.stages() != model.layers() + 2) {
            throw new IllegalArgumentException("placement of " + placement.stages() + " stages for a model of " + (model.layers() + 2));
        }
        if (stage < 0 || stage >= placement.stages()) throw new IllegalArgumentException("no stage " + stage);
        if (replica < 0 || replica >= placement.replicas()) throw new IllegalArgumentException("no replica " + replica);
    }

    /** The stage's name in logs, errors, traces and actor paths: embedding, block-i, head; with "-r1" in replica 1 of several. */
    public String name() {
        return placement.stageName(id());
    }

    /** A stage's name, and its replica's number ({@code replica} ≥ 0) where the pipeline has several. */
    public static String name(int stage, int layers, int replica) {
        return (stage == 0 ? "embedding" : stage == layers + 1 ? "head" : "block-" + (stage - 1)) + (replica < 0 ? "" : "-r" + replica);
    }

    /** The stage actor's number among every replica's: what its events carry. */
    public int id() {
        return placement.actor(replica, stage);
    }

    /** The device the stage runs on, among every replica's. */
    public int device() {
        return placement.deviceOfActor(id());
    }

    public boolean isEmbedding() {
        return stage == 0;
    }

    public boolean isHead() {
        return stage == model.layers() + 1;
    }

    /** The stage with a name, as errors cite it. */
    @Override
    public String toString() {
        return name() + " (stage " + stage + ")";
    }
}
