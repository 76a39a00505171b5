package relay.stages.layers;

import java.util.List;
import relay.stages.tensor.DType;
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
    private boolean trainable = true;
    private DType activations = DType.F32;
    private final List<Parameter> parameters = new java.util.ArrayList<>();

    /** The output of a forward pass (the caller owns it) and what its backward needs. */
    public record Forward(Tensor output, Activations saved) {}

    /** Every parameter of the block, in the order the block registered them. */
    public final List<Parameter> parameters() {
        return List.copyOf(parameters);
    }

    /** Registers a parameter the block creates; returns it for use in the constructor. */
    protected final Parameter register(Parameter p) {
        parameters.add(p);
        return p;
    }

    /** The block's linear layers, where low-rank terms (LoRA, RSO) attach. */
    public abstract List<Linear> linears();

    /**
     * The forward keeping what backward needs: everything for the input gradient, and when
     * {@code trainable} also the inputs of the layers whose weights will get gradients. Without {@code output} (a
     * recomputation for backward, which never reads the block's output) the block's last product and residual add
     * are skipped and the output is null.
     */
    protected abstract Forward compute(Tensor x, int batch, int seq, int[] positions, boolean trainable, boolean output);

    /** A cache for {@link #decode} holding up to {@code capacity} positions. */
    public abstract relay.stages.model.KvCache.Layer newCache(int capacity);

    /**
     * Inference on n new tokens at positions [first, first + n), reading and extending the cache; returns the
     * output (the caller owns it) and keeps nothing else.
     */
    public abstract Tensor decode(Tensor x, relay.stages.model.KvCache.Layer cache, int first);

    /** Backward from the full activations; returns dx, a new tensor the caller owns. */
    protected abstract Tensor backward(Activations a, Tensor dOut, GradientSink sink);

    /**
     * How the block stores what it keeps for backward, its output and its input gradient (bfloat16 halves a
     * pipeline's activation memory and its messages); the math runs in float32 either way. Set it between steps.
     */
    public void setActivations(DType dtype) {
        this.activations = dtype;
    }

    public DType activations() {
        return activations;
    }

    public void setRecompute(boolean recompute) {
        this.recompute = recompute;
    }

    public boolean recompute() {
        return recompute;
    }

    /**
     * A frozen block (LISA) keeps fewer activations and computes no weight gradient: its backward must be
     * given a null sink. Change it only between steps, never between a forward and its backward.
     */
    public void setTrainable(boolean trainable) {
        this.trainable = trainable;
    }

    public boolean trainable() {
        return trainable;
    }

    /** x is [batch·seq, hidden]; the caller keeps x alive until backward. */
    public Forward forward(Tensor x, int batch, int seq) {
        return forward(x, batch, seq, null);
    }

    /**
     * The same for sequences of packed examples: {@code positions} gives each token's offset within its own
     * example (null: each sequence is one example), which attention and rotary positions follow.
     */
    public Forward forward(Tensor x, int batch, int seq, int[] positions) {
        Forward f = compute(x, batch, seq, positions, trainable, true);
        if (!recompute) return f;
        f.saved().close();
        return new Forward(f.output(), new Activations(x, batch, seq, positions));
    }

    /**
     * Returns dx (the caller owns it) and frees the forward's activations. A null sink means frozen:
     * no weight gradient is computed.
     */
    public Tensor backward(Forward f, Tensor dOut, GradientSink sink) {
        if (sink != null && !trainable) throw new IllegalStateException("a frozen block was given a gradient sink");
        try (Activations a = activations(f)) {
            return stored(backward(a, dOut, sink));
        }
    }

    /** dx as the block stores activations: what flows back to the block before it (and crosses devices so). */
    private Tensor stored(Tensor dx) {
        if (dx.dtype() == activations) return dx;
        try (dx) {
            Tensor out = dx.device().empty(dx.category(), activations, dx.shape());
            dx.device().copy(dx, out);
            return out;
        }
    }

    /** The input gradient now (the caller owns it) and the weight gradients later: a split backward's B and W. */
    public record Split(Tensor dx, DeferredWeightGradients weights) {}

    /**
     * The B of a split backward (zero-bubble schedules): the same operations as {@link #backward} in the same
     * order, except that the weight gradients wait in the returned W, which keeps the forward's activations
     * until it is run or closed. A frozen block's W is empty and its activations are freed at once.
     */
    public Split backwardInput(Forward f, Tensor dOut) {
        DeferredWeightGradients w = new DeferredWeightGradients();
        Activations a = activations(f);
        if (!trainable) {
            try (a) {
                return new Split(stored(backward(a, dOut, null)), w);
            }
        }
        w.keepAlive(a);
        try {
            return new Split(stored(backward(a, dOut, w)), w);
        } catch (RuntimeException | Error e) {
            w.close();
            throw e;
        }
    }

    /** What backward reads: the forward's activations, or with recomputation those of the forward run again. */
    private Activations activations(Forward f) {
        Activations saved = f.saved();
        if (!recompute) return saved;
        return compute(saved.input(), saved.batch(), saved.seq(), saved.positions(), trainable, false).saved();
    }

    @Override
    public void close() {
        for (Parameter p : parameters()) p.close();
    }
}
