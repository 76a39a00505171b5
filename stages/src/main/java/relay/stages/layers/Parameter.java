package relay.stages.layers;

import relay.stages.memory.Category;
import relay.stages.tensor.DType;
import relay.stages.tensor.Device;
import relay.stages.tensor.Tensor;

/**
 * A trainable tensor with its Hugging Face name. It owns its value; {@code decay} says whether weight
 * decay applies (not to norms and biases, as is customary).
 */
public final class Parameter implements AutoCloseable {
    private final String name;
    private final Tensor value;
    private final boolean decay;
    /** The float32 copy an update of a bfloat16 value works on, while it runs; null otherwise. */
    private Tensor working;

    public Parameter(String name, Tensor value, boolean decay) {
        this.name = name;
        this.value = value;
        this.decay = decay;
    }

    public String name() {
        return name;
    }

    /** The value: the stored tensor, or during an {@link #update} of a bfloat16 one its float32 working copy. */
    public Tensor value() {
        return working != null ? working : value;
    }

    /**
     * Runs an update of this parameter. A float32 value is updated in place. A bfloat16 one is widened into a
     * float32 working copy (workspace) that {@link #value()} returns while the update runs, and the result is rounded
     * back stochastically with the random bits of {@code key}: an update below half a bfloat16 step then still moves
     * the weight by its size on average, where rounding to nearest would drop it.
     */
    public void update(long key, Runnable update) {
        if (value.dtype() == DType.F32) {
            update.run();
            return;
        }
        Device d = value.device();
        try (Tensor w = d.empty(Category.WORKSPACE, DType.F32, value.shape())) {
            d.copy(value, w);
            working = w;
            try {
                update.run();
            } finally {
                working = null;
            }
            d.roundStochastic(w, value, key);
        }
    }

    public boolean decay() {
        return decay;
    }

    public long size() {
        return value.size();
    }

    @Override
    public void close() {
        value.close();
    }

    @Override
    public String toString() {
        return name + " " + value.describe();
    }
}
