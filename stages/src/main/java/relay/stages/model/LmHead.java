package relay.stages.model;

import java.util.ArrayList;
import java.util.List;
import relay.stages.layers.GradientSink;
import relay.stages.layers.Norm;
import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.tensor.DType;
import relay.stages.tensor.Device;
import relay.stages.tensor.Mat;
import relay.stages.tensor.Tensor;

/**
 * Final norm, projection to the vocabulary and cross-entropy. Loss and backward are fused and run over
 * chunks of rows, so full-vocabulary logits exist for one chunk at a time and are turned into their
 * gradient in place: a [tokens, vocab] buffer never exists. A bfloat16 head (weight and activations) computes as a
 * bfloat16 PyTorch model does: the norm's output rounded to bfloat16, logits and loss in float32, and the logits'
 * gradient rounded to bfloat16 before the two products that take it.
 */
public final class LmHead {
    /**
     * Bytes of logits (and of their bfloat16 gradient) held at once, at most: enough rows per chunk to keep the matrix
     * products efficient.
     */
    private static final long CHUNK_BYTES = 64L << 20;

    private final Norm norm;
    private final List<Parameter> normParameters;
    private final Parameter weight;

    public LmHead(Norm norm, List<Parameter> normParameters, Parameter weight) {
        this.norm = norm;
        this.normParameters = List.copyOf(normParameters);
        this.weight = weight;
    }

    /** The head; with tied embeddings its weight is the embedding's token table, the same parameter. */
    public static LmHead create(ModelConfig cfg, Initializer init, Parameter tokenTable) {
        int c = cfg.hidden();
        Parameter w = cfg.tiedEmbeddings() ? tokenTable : init.normal("lm_head.weight", 0.02f, cfg.vocabSize(), c);
        if (cfg.family() == Family.GPT2) {
            Parameter g = init.constant("transformer.ln_f.weight", 1f, c), b = init.constant("transformer.ln_f.bias", 0f, c);
            return new LmHead(new Norm(g, b, cfg.normEps()), List.of(g, b), w);
        }
        Parameter g = init.constant("model.norm.weight", 1f, c);
        return new LmHead(new Norm(g, null, cfg.normEps()), List.of(g), w);
    }

    public Parameter weight() {
        return weight;
    }

    /** The head's own parameters: the norm, and the projection unless it is tied to the embedding. */
    public List<Parameter> parameters(boolean includeWeight) {
        List<Parameter> ps = new ArrayList<>(normParameters);
        if (includeWeight) ps.add(weight);
        return ps;
    }

    public record Result(double loss, Tensor dx) {}

    /**
     * Rows of logits per chunk, at {@code bytesPerLogit}: as few chunks as {@link #CHUNK_BYTES} allows, of equal size
     * (no small last chunk, whose products run slowly), a multiple of 64 rows where the chunks are cut at all.
     */
    static int chunkRows(int n, int vocab, int bytesPerLogit) {
        int most = (int) Math.max(1, Math.min(n, CHUNK_BYTES / ((long) vocab * bytesPerLogit)));
        int chunks = (n + most - 1) / most;
        if (chunks == 1) return n;
        int even = (n + chunks - 1) / chunks, aligned = (even + 63) / 64 * 64;
        return aligned <= most ? aligned : even;
    }

    /** Targets the loss counts: the non-negative ones. */
    public static int counted(int[] targets) {
        int n = 0;
        for (int t : targets) if (t >= 0) n++;
        return n;
    }

    /**
     * Mean cross-entropy of x's rows against targets and dx, the gradient of gradScale·loss, stored as x is (the
     * caller owns dx). Weight gradients go to the sink unless it is null. The mean is over the counted targets (a negative
     * one is skipped, as Hugging Face's −100); with none counted the loss and every gradient are 0.
     */
    public Result lossAndBackward(Tensor x, int[] targets, float gradScale, GradientSink sink) {
        Device d = x.device();
        int n = x.rows(), c = x.cols(), vocab = weight.value().rows();
        if (targets.length != n) throw new IllegalArgumentException(targets.length + " targets for " + n + " rows");
        boolean bf16 = bf16(x);
        int chunk = chunkRows(n, vocab, bf16 ? Float.BYTES + DType.BF16.bytes() : Float.BYTES);
        int counted = Math.max(1, counted(targets));
        double lossSum = 0;
        Tensor dx = d.allocate(Category.ACTIVATIONS, x.dtype(), n, c);
        Norm.Out y = norm.forward(x, x.dtype());
        try (Tensor yn = y.y(); Norm.Stats stats = y.stats(); Tensor dy = d.empty(Category.ACTIVATIONS, n, c)) {
            GradientSink.Slot dw = sink == null ? null : GradientSink.slot(sink, weight);
            try (Tensor logits = d.empty(Category.WORKSPACE, chunk, vocab);
                 Tensor rounded = bf16 ? d.empty(Category.WORKSPACE, DType.BF16, chunk, vocab) : null) {
                for (int r0 = 0; r0 < n; r0 += chunk) {
                    int rows = Math.min(chunk, n - r0);
                    Tensor z = logits.rowRange(0, rows);
                    Tensor yc = yn.rowRange(r0, r0 + rows);
                    d.gemm(false, true, rows, vocab, c, 1f, Mat.of(yc), Mat.of(weight.value()), 0f, Mat.of(z));
                    lossSum += d.crossEntropy(z, targets, r0, gradScale / counted);
                    Tensor dz = z;
                    if (rounded != null) {
                        dz = rounded.rowRange(0, rows);
                        d.copy(z, dz);
                    }
                    d.gemm(false, false, rows, c, vocab, 1f, Mat.of(dz), Mat.of(weight.value()), 0f,
                            Mat.of(dy.rowRange(r0, r0 + rows)));
                    if (dw != null) d.gemm(true, false, vocab, c, rows, 1f, Mat.of(dz), Mat.of(yc), 1f, Mat.of(dw.tensor()));
                }
            }
            if (dw != null) dw.done();
            norm.backward(dy, x, stats, dx, sink);
        }
        return new Result(lossSum / counted, dx);
    }

    /** Whether the head computes in bfloat16 for x: its weight and x both bfloat16. */
    private boolean bf16(Tensor x) {
        return x.dtype() == DType.BF16 && weight.value().dtype() == DType.BF16;
    }

    /** Mean cross-entropy of x's rows against the counted targets, forward only (evaluation), chunked like training. */
    public double loss(Tensor x, int[] targets) {
        Device d = x.device();
        int n = x.rows(), c = x.cols(), vocab = weight.value().rows();
        int chunk = chunkRows(n, vocab, Float.BYTES);
        double lossSum = 0;
        Norm.Out y = norm.forward(x, x.dtype());
        try (Tensor yn = y.y(); Norm.Stats stats = y.stats(); Tensor logits = d.empty(Category.WORKSPACE, chunk, vocab)) {
            for (int r0 = 0; r0 < n; r0 += chunk) {
                int rows = Math.min(chunk, n - r0);
                Tensor z = logits.rowRange(0, rows);
                d.gemm(false, true, rows, vocab, c, 1f, Mat.of(yn.rowRange(r0, r0 + rows)), Mat.of(weight.value()), 0f, Mat.of(z));
                lossSum += d.crossEntropy(z, targets, r0, 0f);
            }
        }
        return lossSum / Math.max(1, counted(targets));
    }

    /** Logits of the given rows of x, for evaluation and generation (the caller owns them). */
    public Tensor logits(Tensor x) {
        Device d = x.device();
        Norm.Out y = norm.forward(x, x.dtype());
        try (Tensor yn = y.y(); Norm.Stats stats = y.stats()) {
            Tensor z = d.empty(Category.ACTIVATIONS, x.rows(), weight.value().rows());
            d.gemm(false, true, x.rows(), z.cols(), x.cols(), 1f, Mat.of(yn), Mat.of(weight.value()), 0f, Mat.of(z));
            return z;
        }
    }
}
