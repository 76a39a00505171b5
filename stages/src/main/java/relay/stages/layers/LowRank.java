package relay.stages.layers;

/**
 * A low-rank term added to a linear layer: y += scale · (x·Aᵀ)·Bᵀ with A [rank, in] and B [out, rank].
 * LoRA trains both A and B; RSO trains only B in the fixed random subspace spanned by A's rows.
 */
public record LowRank(Parameter a, boolean aTrainable, Parameter b, float scale) implements AutoCloseable {

    public int rank() {
        return b.value().cols();
    }

    @Override
    public void close() {
        a.close();
        b.close();
    }
}
