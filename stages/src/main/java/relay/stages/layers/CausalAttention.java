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
    private final int heads;
    private final int kvHeads;
    private final int headDim;
    private final float scale;
    private final int window;

    public CausalAttention(int heads, int kvHeads, int headDim) {
        this(heads, kvHeads, headDim, 0);
    }

    /** {@code window} 0 attends to every earlier key. */
    public CausalAttention(int heads, int kvHeads, int headDim, int window) {
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException(heads + " attention heads do not split into " + kvHeads + " kv heads");
        }
        this.heads = heads;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.scale = (float) (1.0 / Math.sqrt(headDim));
        if (window < 0) throw new IllegalArgumentException("a sliding window of " + window);
        this.window = window;
    }

    private int kvHead(int h) {
        return h / (heads / kvHeads);
    }

    private static Mat head(Mat m, int batchIndex, int seq, int headIndex, int headDim) {
        return new Mat(m.tensor(), m.offset() + (long) batchIndex * seq * m.ld() + (long) headIndex * headDim, m.ld());
    }

    private static Mat square(Tensor t, int group, int seq) {
        return new Mat(t, (long) group * seq * seq, seq);
    }

    /**
     * Writes the attention output into {@code out} ([tokens, heads·headDim]); returns the probabilities.
     * {@code positions}: batch·seq position ids, or null (each sequence one example). The probabilities are stored
     * as {@code dtype}.
     */
    public Tensor forward(Mat q, Mat k, Mat v, int batch, int seq, int[] positions, Tensor out, DType dtype) {
        Device d = out.device();
        Tensor probs = d.empty(Category.ACTIVATIONS, dtype, batch * heads, seq, seq);
        Mat o = Mat.of(out);
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                d.gemm(false, true, seq, seq, headDim, scale, head(q, b, seq, h, headDim),
                        head(k, b, seq, kvHead(h), headDim), 0f, square(probs, b * heads + h, seq));
            }
        }
        d.causalSoftmax(probs, seq, seq, window, positions);
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                d.gemm(false, false, seq, headDim, seq, 1f, square(probs, b * heads + h, seq),
                        head(v, b, seq, kvHead(h), headDim), 0f, head(o, b, seq, h, headDim));
            }
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
            for (int h = 0; h < heads; h++) {
                d.gemm(false, true, n, total, headDim, scale, head(q, 0, n, h, headDim), head(k, 0, total, kvHead(h), headDim),
                        0f, new Mat(scores, (long) h * n * total, total));
            }
            d.causalSoftmax(scores, n, total, window, null);
            for (int h = 0; h < heads; h++) {
                d.gemm(false, false, n, headDim, total, 1f, new Mat(scores, (long) h * n * total, total),
                        head(v, 0, total, kvHead(h), headDim), 0f, head(o, 0, n, h, headDim));
            }
        }
    }

    /**
     * From dOut, writes dq and accumulates dk and dv (which must start at zero: query heads of one group
     * add into the same key/value head).
     */
    public void backward(Tensor dOut, Tensor probs, Mat q, Mat k, Mat v, int batch, int seq, int[] positions,
                         Mat dq, Mat dk, Mat dv) {
        Device d = dOut.device();
        Mat dO = Mat.of(dOut);
        try (Tensor dScores = d.empty(Category.WORKSPACE, heads, seq, seq)) {
            for (int b = 0; b < batch; b++) {
                for (int h = 0; h < heads; h++) {
                    int g = kvHead(h);
                    Mat p = square(probs, b * heads + h, seq), dS = square(dScores, h, seq);
                    d.gemm(false, true, seq, seq, headDim, 1f, head(dO, b, seq, h, headDim),
                            head(v, b, seq, g, headDim), 0f, dS);
                    d.gemm(true, false, seq, headDim, seq, 1f, p, head(dO, b, seq, h, headDim), 1f,
                            head(dv, b, seq, g, headDim));
                }
                Tensor pb = probs.view(batch * heads * seq, seq).rowRange(b * heads * seq, (b + 1) * heads * seq);
                // Sequence b's heads alone here: its own position ids.
                int[] own = positions == null ? null : java.util.Arrays.copyOfRange(positions, b * seq, (b + 1) * seq);
                d.softmaxBackward(pb, dScores.view(heads * seq, seq), seq, seq, window, own);
                for (int h = 0; h < heads; h++) {
                    int g = kvHead(h);
                    Mat dS = square(dScores, h, seq);
                    d.gemm(false, false, seq, headDim, seq, scale, dS, head(k, b, seq, g, headDim), 0f,
                            head(dq, b, seq, h, headDim));
                    d.gemm(true, false, seq, headDim, seq, scale, dS, head(q, b, seq, h, headDim), 1f,
                            head(dk, b, seq, g, headDim));
                }
            }
        }
    }
}
