package relay.actors;

import java.nio.file.Path;
import relay.stages.model.ModelConfig;

/**
 * Everything a stage actor builds itself from, small enough to travel to another JVM: the model's shape,
 * which stage it is, where its weights come from (fresh from the seed, or read from a model directory:
 * a Hugging Face model or a checkpoint), the placement of every stage on devices, how the pipeline trains,
 * and the wall-clock instant its trace counts from.
 *
 * @param weights a model directory whose tensors the stage reads, or null for weights initialized from the seed
 */
public record StageSpec(int stage, ModelConfig model, long seed, Path weights, Placement placement, PipelineConfig config,
                        long traceEpochMicros) {

    public StageSpec {
        if (placement.stages() != model.layers() + 2) {
            throw new IllegalArgumentException("placement of " + placement.stages() + " stages for a model of " + (model.layers() + 2));
        }
        if (stage < 0 || stage >= placement.stages()) throw new IllegalArgumentException("no stage " + stage);
    }

    /** The stage's name in logs, errors and traces: embedding, block-i, head. */
    public String name() {
        return name(stage, model.layers());
    }

    public static String name(int stage, int layers) {
        return stage == 0 ? "embedding" : stage == layers + 1 ? "head" : "block-" + (stage - 1);
    }

    public int device() {
        return placement.device(stage);
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
