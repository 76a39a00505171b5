package relay.stages.layers;

import relay.stages.memory.Category;
import relay.stages.tensor.DType;
import relay.stages.tensor.Device;
import relay.stages.tensor.Mat;
import relay.stages.tensor.Tensor;

/**
 * Causal scaled-dot-product attention with grouped-query heads (query head h reads key/value head
 * h / (heads / kvHeads)). q, k and v are column blocks of token-major matrices — one head is a strided
 * view, so heads are never copied out. Forward keeps the probabilities for backward. With a sliding window
 * (Mistral, Qwen2) query i sees only keys j with i − window &lt; j ≤ i. With position ids (packed examples, one
 * id per token: its offset in its own example) query i also sees no key before i − positions[i], so each example
 * attends only to itself.
 */
public final class CausalAttention {
    /** Queries (and keys) per block of the causal products: large enough for efficient products, small enough to skip work. */
    public static final int BLOCK = 128;

    private final int heads;
    private final int kvHeads;
    private final int headDim;
    private final float scale;
    private final int window;
    private final int block;

    public CausalAttention(int heads, int kvHeads, int headDim) {
        this(heads, kvHeads, headDim, 0);
    }

    /** {@code window} 0 attends to every earlier key. */
    public CausalAttention(int heads, int kvHeads, int headDim, int window) {
        this(heads, kvHeads, headDim, window, BLOCK);
    }

    /** With causal blocks of {@code block} queries (checks use small ones, so that short sequences span several). */
    public CausalAttention(int heads, int kvHeads, int headDim, int window, int block) {
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException(heads + " attention heads do not split into " + kvHeads + " kv heads");
        }
        this.heads = heads;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.scale = (float) (1.0 / Math.sqrt(headDim));
        if (window < 0) throw new IllegalArgumentException("a sliding window of " + window);
        this.window = window;
        if (block < 1) throw new IllegalArgumentException("a causal block of " + block + " queries");
        this.block = block;
    }

    private int kvHead(int h) {
        return h / (heads / kvHeads);
    }

    private static Mat head(Mat m, int batchIndex, int seq, int headIndex, int headDim) {
        return new Mat(m.tensor(), m.offset() + (long) batchIndex * seq * m.ld() + (long) headIndex * headDim, m.ld());
    }

    /**
     * Writes the attention output into {@code out} ([tokens, heads·headDim]); returns the probabilities.
     * {@code positions}: batch·seq position ids, or null (each sequence one example). The probabilities are stored
     * as {@code dtype}.
     *
     * <p>Queries go in blocks ({@link #BLOCK} rows by default), and a block's products reach only the keys up to its last query:
     * what lies above the diagonal is masked (softmax writes its zeros without reading it), so about a quarter of the
     * products is never computed.
     */
    public Tensor forward(Mat q, Mat k, Mat v, int batch, int seq, int[] positions, Tensor out, DType dtype) {
        Device d = out.device();
        Tensor probs = d.empty(Category.ACTIVATIONS, dtype, batch * heads, seq, seq);
        Mat o = Mat.of(out);
        for (int r0 = 0; r0 < seq; r0 += block) {
            int r1 = Math.min(seq, r0 + block);
            Products scores = new Products();
            for (int b = 0; b < batch; b++) {
                for (int h = 0; h < heads; h++) {
                    scores.add(row(head(q, b, seq, h, headDim), r0), head(k, b, seq, kvHead(h), headDim), at(probs, b * heads + h, seq, r0, 0));
                }
            }
            d.gemmBatch(false, true, r1 - r0, r1, headDim, scale, scores.a, scores.b, 0f, scores.c);
        }
        d.causalSoftmax(probs, seq, seq, window, positions);
        for (int r0 = 0; r0 < seq; r0 += block) {
            int r1 = Math.min(seq, r0 + block);
            Products outs = new Products();
            for (int b = 0; b < batch; b++) {
                for (int h = 0; h < heads; h++) {
                    outs.add(at(probs, b * heads + h, seq, r0, 0), head(v, b, seq, kvHead(h), headDim), row(head(o, b, seq, h, headDim), r0));
                }
            }
            d.gemmBatch(false, false, r1 - r0, headDim, r1, 1f, outs.a, outs.b, 0f, outs.c);
        }
        return probs;
    }

    /**
     * Inference with cached keys and values: n new queries (the last n of {@code total} positions) attend
     * causally over the first {@code total} rows of k and v; the output goes to {@code out} [n, heads·headDim].
     */
    public void attendCached(Mat q, Mat k, Mat v, int n, int total, Tensor out) {
        Device d = out.device();
        Mat o = Mat.of(out);
        try (Tensor scores = d.empty(Category.WORKSPACE, heads, n, total)) {
            Products s = new Products(), outs = new Products();
            for (int h = 0; h < heads; h++) {
                Mat sh = new Mat(scores, (long) h * n * total, total);
                s.add(head(q, 0, n, h, headDim), head(k, 0, total, kvHead(h), headDim), sh);
                outs.add(sh, head(v, 0, total, kvHead(h), headDim), head(o, 0, n, h, headDim));
            }
            d.gemmBatch(false, true, n, total, headDim, scale, s.a, s.b, 0f, s.c);
            d.causalSoftmax(scores, n, total, window, null);
            d.gemmBatch(false, false, n, headDim, total, 1f, outs.a, outs.b, 0f, outs.c);
        }
    }

    /**
     * From dOut, writes dq and accumulates dk and dv (which must start at zero: query heads of one group
     * add into the same key/value head). In blocks as forward: a block of queries reaches the keys up to its last
     * query, a block of keys the queries from its first key on. Where the probabilities, q, k and v are bfloat16, the
     * gradients that meet them in products (dOut, and the scores' gradient after the softmax) are rounded to bfloat16
     * first, as in a bfloat16 PyTorch model, so every product takes two bfloat16 operands.
     */
    public void backward(Tensor dOut, Tensor probs, Mat q, Mat k, Mat v, int batch, int seq, int[] positions,
                         Mat dq, Mat dk, Mat dv) {
        Device d = dOut.device();
        boolean bf16 = probs.dtype() == DType.BF16 && bf16(q) && bf16(k) && bf16(v);
        try (Tensor dScores = d.empty(Category.WORKSPACE, heads, seq, seq);
             Tensor roundedOut = bf16 && dOut.dtype() != DType.BF16 ? d.empty(Category.WORKSPACE, DType.BF16, dOut.shape()) : null;
             Tensor roundedScores = bf16 ? d.empty(Category.WORKSPACE, DType.BF16, heads, seq, seq) : null) {
            if (roundedOut != null) d.copy(dOut, roundedOut);
            Mat dO = Mat.of(roundedOut != null ? roundedOut : dOut);
            Tensor dS = roundedScores != null ? roundedScores : dScores;
            for (int b = 0; b < batch; b++) {
                for (int r0 = 0; r0 < seq; r0 += block) {
                    int r1 = Math.min(seq, r0 + block);
                    Products dP = new Products();
                    for (int h = 0; h < heads; h++) {
                        dP.add(row(head(dO, b, seq, h, headDim), r0), head(v, b, seq, kvHead(h), headDim), at(dScores, h, seq, r0, 0));
                    }
                    d.gemmBatch(false, true, r1 - r0, r1, headDim, 1f, dP.a, dP.b, 0f, dP.c);
                }
                // Query heads of one group add into the same key/value head, in head order (a batch keeps it).
                for (int c0 = 0; c0 < seq; c0 += block) {
                    int c1 = Math.min(seq, c0 + block);
                    Products dV = new Products();
                    for (int h = 0; h < heads; h++) {
                        int g = kvHead(h);
                        dV.add(at(probs, b * heads + h, seq, c0, c0), row(head(dO, b, seq, h, headDim), c0), row(head(dv, b, seq, g, headDim), c0));
                    }
                    d.gemmBatch(true, false, c1 - c0, headDim, seq - c0, 1f, dV.a, dV.b, 1f, dV.c);
                }
                Tensor pb = probs.view(batch * heads * seq, seq).rowRange(b * heads * seq, (b + 1) * heads * seq);
                // Sequence b's heads alone here: its own position ids.
                int[] own = positions == null ? null : java.util.Arrays.copyOfRange(positions, b * seq, (b + 1) * seq);
                d.softmaxBackward(pb, dScores.view(heads * seq, seq), seq, seq, window, own);
                if (roundedScores != null) d.copy(dScores, roundedScores);
                for (int r0 = 0; r0 < seq; r0 += block) {
                    int r1 = Math.min(seq, r0 + block);
                    Products dQ = new Products(), dK = new Products();
                    for (int h = 0; h < heads; h++) {
                        int g = kvHead(h);
                        dQ.add(at(dS, h, seq, r0, 0), head(k, b, seq, g, headDim), row(head(dq, b, seq, h, headDim), r0));
                        dK.add(at(dS, h, seq, r0, r0), row(head(q, b, seq, h, headDim), r0), row(head(dk, b, seq, g, headDim), r0));
                    }
                    d.gemmBatch(false, false, r1 - r0, headDim, r1, scale, dQ.a, dQ.b, 0f, dQ.c);
                    d.gemmBatch(true, false, r1 - r0, headDim, seq - r0, scale, dK.a, dK.b, 1f, dK.c);
                }
            }
        }
    }

    private static boolean bf16(Mat m) {
        return m.tensor().dtype() == DType.BF16;
    }

    /** Row {@code r} on of a matrix. */
    private static Mat row(Mat m, int r) {
        return new Mat(m.tensor(), m.offset() + (long) r * m.ld(), m.ld());
    }

    /** Element (r, c) on of square {@code group} of a [groups, seq, seq] tensor. */
    private static Mat at(Tensor t, int group, int seq, int r, int c) {
        return new Mat(t, (long) group * seq * seq + (long) r * seq + c, seq);
    }

    /** The operands of a batch of products, in order. */
    private static final class Products {
        final java.util.List<Mat> a = new java.util.ArrayList<>(), b = new java.util.ArrayList<>(), c = new java.util.ArrayList<>();

        void add(Mat x, Mat y, Mat out) {
            a.add(x);
            b.add(y);
            c.add(out);
        }
    }
}
