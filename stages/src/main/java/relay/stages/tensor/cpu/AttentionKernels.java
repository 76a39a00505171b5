package relay.stages.tensor.cpu;

import java.nio.FloatBuffer;

/**
 * The non-matmul parts of attention: rotary embedding and the causal softmax with its backward.
 * Rows are copied into heap arrays (see {@link PointwiseKernels}) so the inner loops vectorize.
 */
final class AttentionKernels {
    private AttentionKernels() {}

    /** scale·cos and scale·sin of position·inv_freq[i] for every position and frequency, [seq][d/2] each. */
    static float[][] ropeTable(int seq, double[] inverseFrequencies, double scale) {
        int half = inverseFrequencies.length;
        float[] cos = new float[seq * half], sin = new float[seq * half];
        for (int i = 0; i < half; i++) {
            double freq = inverseFrequencies[i];
            for (int p = 0; p < seq; p++) {
                cos[p * half + i] = (float) (scale * Math.cos(p * freq));
                sin[p * half + i] = (float) (scale * Math.sin(p * freq));
            }
        }
        return new float[][] {cos, sin};
    }

    /** Row r turns by position first + r mod seq, or first + positions[r] with position ids (packed examples). */
    static void rope(FloatBuffer x, int xo, float[] cos, float[] sin, int seq, int first, int[] positions, int heads, int headDim,
                     boolean inverse, int from, int to) {
        int half = headDim / 2, width = heads * headDim;
        float sign = inverse ? -1f : 1f;
        float[] a = new float[width];
        for (int r = from; r < to; r++) {
            int t = (first + (positions == null ? r % seq : positions[r])) * half;
            x.get(xo + r * width, a, 0, width);
            for (int h = 0; h < heads; h++) {
                int base = h * headDim;
                for (int i = 0; i < half; i++) {
                    float c = cos[t + i], s = sign * sin[t + i];
                    float x1 = a[base + i], x2 = a[base + i + half];
                    a[base + i] = x1 * c - x2 * s;
                    a[base + i + half] = x2 * c + x1 * s;
                }
            }
            x.put(xo + r * width, a, 0, width);
        }
    }

    /**
     * The first key row r of [groups, queries, keys] sees: end − window (0 without a window) with
     * end = keys − queries + i + 1 for query i, and with position ids no earlier than its example's first token,
     * end − 1 − positions[i] of the row's sequence ({@code perSequence} groups to a sequence).
     */
    private static int start(int r, int queries, int keys, int window, int[] positions, int perSequence) {
        int i = r % queries, end = keys - queries + i + 1, start = window > 0 ? Math.max(0, end - window) : 0;
        return positions == null ? start : Math.max(start, end - 1 - positions[r / queries / perSequence * queries + i]);
    }

    /**
     * Rows are (group, query i) pairs of [groups, queries, keys]; row i keeps keys start..end − 1 with
     * end = keys − queries + i + 1 and start as {@link #start} says: a row's visible keys are
     * copied to the front of the work arrays, so the loops below are the plain softmax.
     */
    static void causalSoftmax(FloatBuffer p, int po, int queries, int keys, int window, int[] positions, int perSequence,
                              int from, int to) {
        float[] a = new float[keys], zeros = new float[keys];
        for (int r = from; r < to; r++) {
            int end = keys - queries + r % queries + 1, start = start(r, queries, keys, window, positions, perSequence), n = end - start;
            int base = po + r * keys;
            p.get(base + start, a, 0, n);
            float max = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < n; j++) max = Math.max(max, a[j]);
            for (int j = 0; j < n; j++) a[j] = FastExp.exp(a[j] - max);
            float inv = (float) (1.0 / Sums.sum(a, n));
            for (int j = 0; j < n; j++) a[j] *= inv;
            p.put(base, zeros, 0, start);
            p.put(base + start, a, 0, n);
            p.put(base + end, zeros, 0, keys - end);
        }
    }

    /** Rows as for {@link #causalSoftmax}; only a row's visible keys are read, the rest of dS is written 0. */
    static void softmaxBackward(FloatBuffer p, int po, FloatBuffer dp, int dpo, int queries, int keys, int window, int[] positions,
                                int perSequence, int from, int to) {
        float[] a = new float[keys], d = new float[keys], zeros = new float[keys];
        for (int r = from; r < to; r++) {
            int end = keys - queries + r % queries + 1, start = start(r, queries, keys, window, positions, perSequence), n = end - start;
            int base = r * keys;
            p.get(po + base + start, a, 0, n);
            dp.get(dpo + base + start, d, 0, n);
            float fd = (float) Sums.dot(a, d, n);
            for (int j = 0; j < n; j++) d[j] = a[j] * (d[j] - fd);
            dp.put(dpo + base, zeros, 0, start);
            dp.put(dpo + base + start, d, 0, n);
            dp.put(dpo + base + end, zeros, 0, keys - end);
        }
    }
}
