package relay.stages.layers;

import relay.stages.memory.Category;
import relay.stages.tensor.DType;
import relay.stages.tensor.Device;
import relay.stages.tensor.Mat;
import relay.stages.tensor.Tensor;

/**
 * y = x·Wᵀ + b with W stored [out, in] (torch's nn.Linear layout), optionally plus a {@link LowRank} term.
 * With a low-rank term the base weight and bias are frozen (LoRA, RSO): backward then needs x only if A
 * is trained, and otherwise keeps just the small x·Aᵀ — the activation saving RSO is built on.
 */
public final class Linear {
    private final Parameter weight;
    private final Parameter bias;
    private LowRank lowRank;

    public Linear(Parameter weight, Parameter bias) {
        this.weight = weight;
        this.bias = bias;
    }

    public Parameter weight() {
        return weight;
    }

    public Parameter bias() {
        return bias;
    }

    public LowRank lowRank() {
        return lowRank;
    }

    /** Adds (or with null removes) a low-rank term; the base weight and bias are frozen while it is there. */
    public void setLowRank(LowRank term) {
        if (term != null && (term.a().value().cols() != in() || term.b().value().rows() != out())) {
            throw new IllegalArgumentException("low-rank term " + term.a() + ", " + term.b() + " does not fit " + weight);
        }
        this.lowRank = term;
    }

    public int in() {
        return weight.value().cols();
    }

    public int out() {
        return weight.value().rows();
    }

    /**
     * What backward needs: x when a trained matrix multiplies it (a reference, not owned), x·Aᵀ, and the type x was
     * stored as (the run's activations) — a frozen layer's too, whose input gradient is rounded as a trained one's.
     */
    public record Saved(Tensor input, Tensor projected, DType activations) implements AutoCloseable {

        @Override
        public void close() {
            if (projected != null) projected.close();
        }
    }

    /** Whether backward reads x itself (rather than only W, or x·Aᵀ). */
    public boolean needsInput() {
        return lowRank == null || lowRank.aTrainable();
    }

    /** y = forward(x) as a new tensor, keeping nothing for backward (inference). */
    public Tensor forward(Tensor x, Category category) {
        Tensor y = x.device().empty(category, x.rows(), out());
        forward(x, y, false).close();
        return y;
    }

    /**
     * Writes y; when {@code training}, returns what backward needs (the caller keeps x alive if it is in it). A null y
     * computes only that (a recomputation whose output nobody reads).
     */
    public Saved forward(Tensor x, Tensor y, boolean training) {
        Device d = x.device();
        if (y != null) {
            d.gemm(false, true, x.rows(), out(), in(), 1f, Mat.of(x), Mat.of(weight.value()), 0f, Mat.of(y));
            if (bias != null) d.addRowVector(y, bias.value());
        }
        if (lowRank == null) return new Saved(training ? x : null, null, x.dtype());
        int r = lowRank.rank();
        Tensor xa = d.empty(Category.ACTIVATIONS, x.rows(), r);
        d.gemm(false, true, x.rows(), r, in(), 1f, Mat.of(x), Mat.of(lowRank.a().value()), 0f, Mat.of(xa));
        if (y != null) d.gemm(false, true, x.rows(), out(), r, lowRank.scale(), Mat.of(xa), Mat.of(lowRank.b().value()), 1f, Mat.of(y));
        if (!training) {
            xa.close();
            return new Saved(null, null, x.dtype());
        }
        return new Saved(lowRank.aTrainable() ? x : null, xa, x.dtype());
    }

    /**
     * Writes dx = ∂/∂x into {@code dx} (adds to it when {@code accumulate}), then, unless the sink is null,
     * hands out the gradients of the trained matrices. dx is complete before any gradient is handed out, so
     * a sink may update a weight in place (LOMO).
     */
    public void backward(Saved saved, Tensor dy, Tensor dx, boolean accumulate, GradientSink sink) {
        try (Tensor rounded = roundedForBf16(saved, dy)) {
            backwardOf(saved, rounded == null ? dy : rounded, dx, accumulate, sink);
        }
    }

    /**
     * A float32 dy rounded to bfloat16 where the layer is bfloat16 throughout (weight and activations): the gradient
     * reaches the layer rounded once, as in a bfloat16 PyTorch model, and both products take two bfloat16 operands
     * (the fast ones: see CpuDevice). Null where dy stays as it is.
     */
    private Tensor roundedForBf16(Saved saved, Tensor dy) {
        if (lowRank != null || dy.dtype() != DType.F32 || weight.value().dtype() != DType.BF16 || saved.activations() != DType.BF16) {
            return null;
        }
        Tensor r = dy.device().empty(Category.WORKSPACE, DType.BF16, dy.shape());
        dy.device().copy(dy, r);
        return r;
    }

    private void backwardOf(Saved saved, Tensor dy, Tensor dx, boolean accumulate, GradientSink sink) {
        Device d = dy.device();
        int n = dy.rows();
        d.gemm(false, false, n, in(), out(), 1f, Mat.of(dy), Mat.of(weight.value()), accumulate ? 1f : 0f, Mat.of(dx));
        if (lowRank == null) {
            if (sink != null) sink.weightWork(java.util.List.of(dy), (in, to) -> emitBase(saved.input(), in.get(0), to));
            return;
        }
        try (Tensor dxa = d.empty(Category.ACTIVATIONS, n, lowRank.rank())) {
            d.gemm(false, false, n, lowRank.rank(), out(), 1f, Mat.of(dy), Mat.of(lowRank.b().value()), 0f, Mat.of(dxa));
            d.gemm(false, false, n, in(), lowRank.rank(), lowRank.scale(), Mat.of(dxa), Mat.of(lowRank.a().value()), 1f, Mat.of(dx));
            if (sink != null) sink.weightWork(java.util.List.of(dy, dxa), (in, to) -> emitLowRank(saved, in.get(0), in.get(1), to));
        }
    }

    /** The low-rank factors' gradients from dy and dy·B (scaled). */
    private void emitLowRank(Saved saved, Tensor dy, Tensor dxa, GradientSink sink) {
        Device d = dy.device();
        int n = dy.rows(), r = lowRank.rank();
        float s = lowRank.scale();
        GradientSink.Slot db = GradientSink.slot(sink, lowRank.b());
        d.gemm(true, false, out(), r, n, s, Mat.of(dy), Mat.of(saved.projected()), 1f, Mat.of(db.tensor()));
        db.done();
        if (lowRank.aTrainable()) {
            GradientSink.Slot da = GradientSink.slot(sink, lowRank.a());
            d.gemm(true, false, r, in(), n, s, Mat.of(dxa), Mat.of(saved.input()), 1f, Mat.of(da.tensor()));
            da.done();
        }
    }

    private void emitBase(Tensor x, Tensor dy, GradientSink sink) {
        Device d = dy.device();
        GradientSink.Slot dw = GradientSink.slot(sink, weight);
        d.gemm(true, false, out(), in(), dy.rows(), 1f, Mat.of(dy), Mat.of(x), 1f, Mat.of(dw.tensor()));
        dw.done();
        if (bias != null) {
            GradientSink.Slot db = GradientSink.slot(sink, bias);
            d.sumRows(dy, db.tensor(), true);
            db.done();
        }
    }

    /**
     * Folds the low-rank term into the weight, W += scale·B·A (RSO's merge before a redraw, or LoRA export): an update
     * of W, so a bfloat16 W takes it rounded stochastically with the random bits of {@code key}.
     */
    public void mergeLowRank(long key) {
        weight.update(key, () -> addLowRank(weight.value()));
    }

    /**
     * The weight this layer computes with, W + scale·B·A, as values — W untouched, so training goes on (a
     * checkpoint or an evaluation in the middle of a LoRA or RSO run).
     */
    public float[] effectiveWeight() {
        if (lowRank == null) return weight.value().toArray();
        Device d = weight.value().device();
        try (Tensor w = d.empty(Category.WORKSPACE, out(), in())) {
            d.copy(weight.value(), w);
            addLowRank(w);
            return w.toArray();
        }
    }

    private void addLowRank(Tensor w) {
        Device d = w.device();
        d.gemm(false, false, out(), in(), lowRank.rank(), lowRank.scale(), Mat.of(lowRank.b().value()),
                Mat.of(lowRank.a().value()), 1f, Mat.of(w));
    }
}
