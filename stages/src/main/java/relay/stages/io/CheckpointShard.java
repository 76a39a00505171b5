package relay.stages.io;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.DType;

/**
 * A part of a checkpoint: a copy of some parameters' values and of their optimizer state, taken at a step
 * boundary so that writing it can overlap the steps that follow. It becomes two files of the checkpoint
 * directory, each synced before it is reported: {@code model-<part>.safetensors}, a shard of the Hugging Face
 * model that the checkpoint's index lists, and {@code optimizer-<part>.safetensors} ("parameter/role" →
 * values). The part of a whole model writes {@code model.safetensors} and {@code optimizer.safetensors}.
 *
 * <p>The weights are written in the run's dtype (a bfloat16 run's as BF16, each value with the bits its parameter
 * holds, so they read back bit for bit into bfloat16 parameters); optimizer state is always float32.
 */
public final class CheckpointShard {
    /** A file of a shard: its name in the checkpoint directory, its SHA-256, and the model tensors in it (none: optimizer state). */
    public record File(String name, String sha256, List<String> tensors) {
        public File {
            tensors = List.copyOf(tensors);
        }
    }

    private final String part;
    private final ModelConfig model;
    private final String method;
    private final DType dtype;
    private final List<SafeTensors.Tensor32> weights;
    private final Map<String, float[]> state;

    /**
     * A shard of copies no one else holds: the weights' values as the model computes with them, and the state
     * as the update rule exported it.
     *
     * @param part the part's name in its file names, or "" for the whole model
     */
    public CheckpointShard(String part, ModelConfig model, String method, List<SafeTensors.Tensor32> weights, Map<String, float[]> state) {
        this(part, model, method, DType.F32, weights, state);
    }

    /**
     * The same, the weights written as {@code dtype}: the run's weight dtype. A bfloat16 run's weights written as F32 would
     * also keep their values, at twice the bytes; as BF16 they keep their bits.
     */
    public CheckpointShard(String part, ModelConfig model, String method, DType dtype, List<SafeTensors.Tensor32> weights,
                           Map<String, float[]> state) {
        this.part = part;
        this.model = model;
        this.method = method;
        this.dtype = dtype;
        this.weights = List.copyOf(weights);
        this.state = new java.util.TreeMap<>(state);
    }

    /** The dtype the weights are written in. */
    public DType dtype() {
        return dtype;
    }

    /** The bytes the copy holds until it is written. */
    public long bytes() {
        long floats = 0;
        for (SafeTensors.Tensor32 t : weights) floats += t.values().length;
        for (float[] v : state.values()) floats += v.length;
        return floats * Float.BYTES;
    }

    /**
     * Writes both files into the checkpoint directory (creating it) and returns them with their digests; a shard of no
     * weights (a replica's whose weights another shard holds) writes only its optimizer state.
     */
    public List<File> write(Path directory) throws IOException {
        String suffix = part.isEmpty() ? "" : "-" + part;
        Path model = directory.resolve("model" + suffix + ".safetensors"), optimizer = directory.resolve("optimizer" + suffix + ".safetensors");
        List<File> out = new ArrayList<>();
        if (!weights.isEmpty()) {
            String modelSum = HfModelDirectory.writeShard(this.model, weights, model, dtype);
            out.add(new File(model.getFileName().toString(), modelSum, weights.stream().map(SafeTensors.Tensor32::name).toList()));
        }
        List<SafeTensors.Tensor32> values = new ArrayList<>();
        state.forEach((name, v) -> values.add(new SafeTensors.Tensor32(name, new int[] {v.length}, v)));
        String optimizerSum = SafeTensors.write(optimizer, values, Map.of("optimizer", method));
        out.add(new File(optimizer.getFileName().toString(), optimizerSum, List.of()));
        return out;
    }
}
