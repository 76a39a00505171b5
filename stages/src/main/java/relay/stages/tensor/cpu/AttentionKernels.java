package relay.stages.tensor.cpu;

import java.nio.FloatBuffer;

/** The non-matmul parts of attention: rotary embedding and the causal softmax with its backward. */
final class AttentionKernels {
    private AttentionKernels() {}

    /** cos and sin of position·θ^(−2i/d) for every position and frequency, [seq][d/2] each. */
    static float[][] ropeTable(int seq, int headDim, double theta) {
        int half = headDim / 2;
        float[] cos = new float[seq * half], sin = new float[seq * half];
        for (int i = 0; i < half; i++) {
            double freq = Math.pow(theta, -2.0 * i / headDim);
            for (int p = 0; p < seq; p++) {
                cos[p * half + i] = (float) Math.cos(p * freq);
                sin[p * half + i] = (float) Math.sin(p * freq);
            }
        }
        return new float[][] {cos, sin};
    }

    static void rope(FloatBuffer x, int xo, float[] cos, float[] sin, int seq, int heads, int headDim,
                     boolean inverse, int from, int to) {
        int half = headDim / 2, width = heads * headDim;
        float sign = inverse ? -1f : 1f;
        for (int r = from; r < to; r++) {
            int t = (r % seq) * half;
            for (int h = 0; h < heads; h++) {
                int base = xo + r * width + h * headDim;
                for (int i = 0; i < half; i++) {
                    float c = cos[t + i], s = sign * sin[t + i];
                    float x1 = x.get(base + i), x2 = x.get(base + i + half);
                    x.put(base + i, x1 * c - x2 * s);
                    x.put(base + i + half, x2 * c + x1 * s);
                }
            }
        }
    }

    /** Rows are (group, i) pairs of a [groups, seq, seq] tensor; row i keeps columns 0..i. */
    static void causalSoftmax(FloatBuffer p, int po, int seq, int from, int to) {
        for (int r = from; r < to; r++) {
            int i = r % seq, base = po + r * seq;
            float max = Float.NEGATIVE_INFINITY;
            for (int j = 0; j <= i; j++) max = Math.max(max, p.get(base + j));
            float sum = 0;
            for (int j = 0; j <= i; j++) {
                float e = FastExp.exp(p.get(base + j) - max);
                p.put(base + j, e);
                sum += e;
            }
            float inv = 1f / sum;
            for (int j = 0; j <= i; j++) p.put(base + j, p.get(base + j) * inv);
            for (int j = i + 1; j < seq; j++) p.put(base + j, 0f);
        }
    }

    static void softmaxBackward(FloatBuffer p, int po, FloatBuffer dp, int dpo, int cols, int from, int to) {
        for (int r = from; r < to; r++) {
            int pb = po + r * cols, db = dpo + r * cols;
            float dot = 0;
            for (int j = 0; j < cols; j++) dot += p.get(pb + j) * dp.get(db + j);
            for (int j = 0; j < cols; j++) dp.put(db + j, p.get(pb + j) * (dp.get(db + j) - dot));
        }
    }
}
