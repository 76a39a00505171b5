package relay.stages.model;

import java.util.ArrayList;
import java.util.List;
import relay.stages.tensor.Tensor;

/**
 * Keys and values of the tokens a model has seen, per block, so that generating one more token costs one
 * token's forward instead of the whole sequence's. Holds up to {@code capacity} positions (batch of one).
 */
public final class KvCache implements AutoCloseable {

    /** One block's cache: what it stores is the block's choice (GPT-2 keeps whole qkv rows in keys). */
    public record Layer(Tensor keys, Tensor values) implements AutoCloseable {
        @Override
        public void close() {
            keys.close();
            if (values != null) values.close();
        }
    }

    private final List<Layer> layers = new ArrayList<>();
    private final int capacity;
    private int length;

    public KvCache(Model model, int capacity) {
        // Dynamic rotary scaling is what lets a LLaMA-family model run past max_position_embeddings.
        if (capacity > model.config().maxPositions() && !RotaryEmbedding.of(model.config()).dependsOnLength()) {
            throw new IllegalArgumentException("a cache of " + capacity + " exceeds the model's " + model.config().maxPositions() + " positions");
        }
        this.capacity = capacity;
        for (var b : model.blocks()) layers.add(b.newCache(capacity));
    }

    public Layer layer(int block) {
        return layers.get(block);
    }

    /** Positions filled so far. */
    public int length() {
        return length;
    }

    public int capacity() {
        return capacity;
    }

    void advance(int n) {
        length += n;
    }

    @Override
    public void close() {
        layers.forEach(Layer::close);
    }
}
