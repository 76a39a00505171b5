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

    /**
     * The loss, dx (the caller owns it), and where the weight's gradient was deferred, the work that computes it
     * (else null): the caller runs it later, or closes it to drop it.
     */
    public record Result(double loss, Tensor dx, WeightGradient weightGradient) {}

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
     * What a batch's mean loss weighs in a step of {@code batches} whose loss is the mean over all {@code inStep} targets
     * they count, where the batch counts {@code counted}: its share of them times the batches — exactly 1 where every
     * batch counts as many (unmasked data); 1 for a batch counting none (its loss and gradient are 0 whatever it weighs).
     */
    public static float weightInStep(int counted, int batches, int inStep) {
        return counted == 0 ? 1f : (float) counted * batches / inStep;
    }

    /**
     * Mean cross-entropy of x's rows against targets and dx, the gradient of gradScale·loss, stored as x is (the
     * caller owns dx). Weight gradients go to the sink unless it is null. The mean is over the counted targets (a negative
     * one is skipped, as Hugging Face's −100); with none counted the loss and every gradient are 0.
     */
    public Result lossAndBackward(Tensor x, int[] targets, float gradScale, GradientSink sink) {
        return lossAndBackward(x, targets, gradScale, sink, false);
    }

    /**
     * The same, and where {@code mayDefer} and {@link #defersWeightGradient} agree, the weight's gradient is left to
     * the returned work: it keeps only the norm's output and computes the logits again, so the gradient (the
     * vocabulary × hidden matrix in float32) need not exist while the blocks' activations do.
     */
    public Result lossAndBackward(Tensor x, int[] targets, float gradScale, GradientSink sink, boolean mayDefer) {
        Device d = x.device();
        int n = x.rows(), c = x.cols();
        if (targets.length != n) throw new IllegalArgumentException(targets.length + " targets for " + n + " rows");
        float scale = gradScale / Math.max(1, counted(targets));
        boolean defer = mayDefer && defersWeightGradient(x, sink);
        Tensor dx = d.allocate(Category.ACTIVATIONS, x.dtype(), n, c);
        Norm.Out y = norm.forward(x, x.dtype());
        Tensor yn = y.y();
        GradientSink.Slot dw = null;
        try (Norm.Stats stats = y.stats(); Tensor dy = d.empty(Category.ACTIVATIONS, n, c)) {
            dw = sink == null || defer ? null : GradientSink.slot(sink, weight);
            double loss = chunks(yn, targets, scale, dy, dw == null ? null : dw.tensor());
            if (dw != null) {
                GradientSink.Slot computed = dw;
                dw = null;
                computed.done();
            }
            norm.backward(dy, x, stats, dx, sink);
            if (!defer) yn.close();
            return new Result(loss, dx, defer ? new WeightGradient(yn, targets, scale, sink) : null);
        } catch (RuntimeException | Error e) {
            if (dw != null) dw.abandon();
            if (!yn.isFreed()) yn.close();
            dx.close();
            throw e;
        }
    }

    /**
     * Whether deferring the weight's gradient saves memory at a price worth paying: no memory for the gradient exists
     * yet (the sink holds no running sum of it), and the head computes in bfloat16, where its products are fast
     * enough that computing the logits again costs 4 % of a GPT-2 124M step for 147 MiB of its peak (2026-12-05; in
     * float32 it would cost 9 %).
     */
    public boolean defersWeightGradient(Tensor x, GradientSink sink) {
        return sink != null && bf16(x) && !sink.holdsSumFor(weight);
    }

    /** The head weight's gradient, computed after the head's backward from what it kept. */
    public final class WeightGradient implements AutoCloseable {
        private final Tensor normed;
        private final int[] targets;
        private final float scale;
        private final GradientSink sink;

        private WeightGradient(Tensor normed, int[] targets, float scale, GradientSink sink) {
            this.normed = normed;
            this.targets = targets;
            this.scale = scale;
            this.sink = sink;
        }

        /** Computes the gradient, hands it to the sink, and frees what it kept. */
        public void run() {
            try {
                GradientSink.Slot dw = GradientSink.slot(sink, weight);
                try {
                    chunks(normed, targets, scale, null, dw.tensor());
                } catch (RuntimeException | Error e) {
                    dw.abandon();
                    throw e;
                }
                dw.done();
            } finally {
                close();
            }
        }

        @Override
        public void close() {
            if (!normed.isFreed()) normed.close();
        }
    }

    /**
     * One pass over the logits of yn's rows (the norm's output), a chunk of rows at a time: returns the mean loss, and
     * where given, writes dy (∂/∂yn of scale·Σ loss) and adds the weight's gradient into dw. A bfloat16 head rounds
     * each chunk's logit gradient to bfloat16 before the products that take it.
     */
    private double chunks(Tensor yn, int[] targets, float scale, Tensor dy, Tensor dw) {
        Device d = yn.device();
        int n = yn.rows(), c = yn.cols(), vocab = weight.value().rows();
        boolean backward = dy != null || dw != null, round = backward && bf16(yn);
        int chunk = chunkRows(n, vocab, round ? Float.BYTES + DType.BF16.bytes() : Float.BYTES);
        double lossSum = 0;
        try (Tensor logits = d.empty(Category.WORKSPACE, chunk, vocab);
             Tensor rounded = round ? d.empty(Category.WORKSPACE, DType.BF16, chunk, vocab) : null) {
            for (int r0 = 0; r0 < n; r0 += chunk) {
                int rows = Math.min(chunk, n - r0);
                Tensor z = logits.rowRange(0, rows);
                Tensor yc = yn.rowRange(r0, r0 + rows);
                d.gemm(false, true, rows, vocab, c, 1f, Mat.of(yc), Mat.of(weight.value()), 0f, Mat.of(z));
                lossSum += d.crossEntropy(z, targets, r0, backward ? scale : 0f);
                if (!backward) continue;
                Tensor dz = z;
                if (rounded != null) {
                    dz = rounded.rowRange(0, rows);
                    d.copy(z, dz);
                }
                if (dy != null) {
                    d.gemm(false, false, rows, c, vocab, 1f, Mat.of(dz), Mat.of(weight.value()), 0f, Mat.of(dy.rowRange(r0, r0 + rows)));
                }
                if (dw != null) d.gemm(true, false, vocab, c, rows, 1f, Mat.of(dz), Mat.of(yc), 1f, Mat.of(dw));
            }
        }
        return lossSum / Math.max(1, counted(targets));
    }

    /** Whether the head computes in bfloat16 for x: its weight and x both bfloat16. */
    private boolean bf16(Tensor x) {
        return x.dtype() == DType.BF16 && weight.value().dtype() == DType.BF16;
    }

    /** Mean cross-entropy of x's rows against the counted targets, forward only (evaluation), chunked like training. */
    public double loss(Tensor x, int[] targets) {
        Norm.Out y = norm.forward(x, x.dtype());
        try (Tensor yn = y.y(); Norm.Stats stats = y.stats()) {
            return chunks(yn, targets, 0f, null, null);
        }
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
