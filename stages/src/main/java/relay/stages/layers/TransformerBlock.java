package relay.stages.layers;

import java.util.List;
import relay.stages.tensor.Tensor;

/**
 * One transformer block with an explicit backward that is split for a pipeline: the input gradient
 * always, the weight gradients only when a sink is given, each handed out as soon as it is complete.
 *
 * <p>With recomputation on, forward keeps only its input and backward runs the forward again first,
 * trading one extra forward for the block's activation memory.
 */
public abstract class TransformerBlock implements AutoCloseable {
    private boolean recompute;

    /** The output of a forward pass (the caller owns it) and what its backward needs. */
    public record Forward(Tensor output, Activations saved) {}

    public abstract List<Parameter> parameters();

    /** The forward keeping every activation backward needs. */
    protected abstract Forward compute(Tensor x, int batch, int seq);

    /** Backward from the full activations; returns dx, a new tensor the caller owns. */
    protected abstract Tensor backward(Activations a, Tensor dOut, GradientSink sink);

    public void setRecompute(boolean recompute) {
        this.recompute = recompute;
    }

    public boolean recompute() {
        return recompute;
    }

    /** x is [batch·seq, hidden]; the caller keeps x alive until backward. */
    public Forward forward(Tensor x, int batch, int seq) {
        Forward f = compute(x, batch, seq);
        if (!recompute) return f;
        f.saved().close();
        return new Forward(f.output(), new Activations(x, batch, seq));
    }

    /**
     * Returns dx (the caller owns it) and frees the forward's activations. A null sink means frozen:
     * no weight gradient is computed.
     */
    public Tensor backward(Forward f, Tensor dOut, GradientSink sink) {
        Activations saved = f.saved();
        if (!recompute) {
            try (saved) {
                return backward(saved, dOut, sink);
            }
        }
        Forward again = compute(saved.input(), saved.batch(), saved.seq());
        again.output().close();
        try (Activations a = again.saved()) {
            return backward(a, dOut, sink);
        }
    }

    @Override
    public void close() {
        for (Parameter p : parameters()) p.close();
    }
}
