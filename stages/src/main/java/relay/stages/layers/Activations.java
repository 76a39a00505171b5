package relay.stages.layers;

import java.util.ArrayList;
import java.util.List;
import relay.stages.tensor.Tensor;

/**
 * What one forward pass of a block keeps for its backward: the input (by reference — the caller keeps
 * it alive until backward), the position ids of packed examples (null: none), and the tensors the block
 * allocated, which closing frees.
 */
public class Activations implements AutoCloseable {
    private final Tensor input;
    private final int batch;
    private final int seq;
    private final int[] positions;
    private final List<AutoCloseable> owned = new ArrayList<>();

    public Activations(Tensor input, int batch, int seq, int[] positions) {
        this.input = input;
        this.batch = batch;
        this.seq = seq;
        this.positions = positions;
    }

    public Tensor input() {
        return input;
    }

    public int batch() {
        return batch;
    }

    public int seq() {
        return seq;
    }

    /** Each token's offset within its own example (batch·seq of them), or null when each sequence is one example. */
    public int[] positions() {
        return positions;
    }

    /** Registers something this forward allocated, to be freed with the activations. */
    public <T extends AutoCloseable> T keep(T t) {
        owned.add(t);
        return t;
    }

    /**
     * Keeps {@code t} if one of the layers it fed holds it for backward, and frees it otherwise
     * (a frozen block, or layers that only need their low-rank projection).
     */
    public void keepIfUsed(Tensor t, Linear.Saved... users) {
        for (Linear.Saved u : users) {
            if (u.input() == t) {
                keep(t);
                return;
            }
        }
        t.close();
    }

    @Override
    public void close() {
        RuntimeException failure = null;
        for (int i = owned.size() - 1; i >= 0; i--) {
            try {
                owned.get(i).close();
            } catch (Exception e) {
                if (failure == null) failure = new IllegalStateException("freeing activations", e);
            }
        }
        owned.clear();
        if (failure != null) throw failure;
    }
}
