package relay.stages.tensor.cpu;

import java.nio.FloatBuffer;

/**
 * Activation functions and their derivatives over elements [from, to). Each works on chunks copied
 * into heap arrays: direct-buffer accesses are bounds-checked one by one and keep the JIT from
 * vectorizing, while a bulk copy is a memcpy and the array loop vectorizes.
 */
final class PointwiseKernels {
    private PointwiseKernels() {}

    static final int CHUNK = 2048;
    private static final float GELU_K = (float) Math.sqrt(2.0 / Math.PI);
    private static final float GELU_C = 0.044715f;

    /** partial[k] = Σ x² over chunk k of the n elements at xo, for chunks [from, to). */
    static void sumOfSquares(FloatBuffer x, int xo, int n, double[] partial, int from, int to) {
        float[] a = new float[CHUNK];
        for (int k = from; k < to; k++) {
            int len = Math.min(CHUNK, n - k * CHUNK);
            x.get(xo + k * CHUNK, a, 0, len);
            partial[k] = Sums.squaredDeviations(a, 0f, len);
        }
    }

    static void gelu(FloatBuffer x, int xo, FloatBuffer y, int yo, int from, int to) {
        float[] a = new float[CHUNK];
        for (int c0 = from; c0 < to; c0 += CHUNK) {
            int n = Math.min(CHUNK, to - c0);
            x.get(xo + c0, a, 0, n);
            for (int i = 0; i < n; i++) {
                float v = a[i];
                a[i] = 0.5f * v * (1f + FastTanh.tanh(GELU_K * (v + GELU_C * v * v * v)));
            }
            y.put(yo + c0, a, 0, n);
        }
    }

    /** Two passes per chunk (tanh, then the derivative): one fused loop is too large for the JIT to vectorize. */
    static void geluBackward(FloatBuffer x, int xo, FloatBuffer dy, int dyo, FloatBuffer dx, int dxo,
                             int from, int to) {
        float[] a = new float[CHUNK], g = new float[CHUNK], t = new float[CHUNK];
        for (int c0 = from; c0 < to; c0 += CHUNK) {
            int n = Math.min(CHUNK, to - c0);
            x.get(xo + c0, a, 0, n);
            dy.get(dyo + c0, g, 0, n);
            for (int i = 0; i < n; i++) {
                float v = a[i];
                t[i] = FastTanh.tanh(GELU_K * (v + GELU_C * v * v * v));
            }
            for (int i = 0; i < n; i++) {
                float v = a[i], th = t[i];
                float du = GELU_K * (1f + 3f * GELU_C * v * v);
                t[i] = g[i] * (0.5f * (1f + th) + 0.5f * v * (1f - th * th) * du);
            }
            dx.put(dxo + c0, t, 0, n);
        }
    }

    static void swiglu(FloatBuffer gate, int go, FloatBuffer up, int uo, FloatBuffer out, int oo,
                       int from, int to) {
        float[] a = new float[CHUNK], b = new float[CHUNK];
        for (int c0 = from; c0 < to; c0 += CHUNK) {
            int n = Math.min(CHUNK, to - c0);
            gate.get(go + c0, a, 0, n);
            up.get(uo + c0, b, 0, n);
            for (int i = 0; i < n; i++) b[i] *= a[i] * FastTanh.sigmoid(a[i]);
            out.put(oo + c0, b, 0, n);
        }
    }

    /** d silu(g)/dg = s·(1 + g·(1 − s)) with s the sigmoid; the sigmoid in a pass of its own, as above. */
    static void swigluBackward(FloatBuffer gate, int go, FloatBuffer up, int uo, FloatBuffer dOut, int doo,
                               FloatBuffer dGate, int dgo, FloatBuffer dUp, int duo, int from, int to) {
        float[] a = new float[CHUNK], b = new float[CHUNK], d = new float[CHUNK], s = new float[CHUNK];
        for (int c0 = from; c0 < to; c0 += CHUNK) {
            int n = Math.min(CHUNK, to - c0);
            gate.get(go + c0, a, 0, n);
            up.get(uo + c0, b, 0, n);
            dOut.get(doo + c0, d, 0, n);
            for (int i = 0; i < n; i++) s[i] = FastTanh.sigmoid(a[i]);
            for (int i = 0; i < n; i++) {
                float g = a[i], si = s[i];
                b[i] *= d[i] * si * (1f + g * (1f - si));
                d[i] *= g * si;
            }
            dGate.put(dgo + c0, b, 0, n);
            dUp.put(duo + c0, d, 0, n);
        }
    }

    /** z = α·x + β·y over [from, to); z may be x or y. */
    static void axpby(float alpha, FloatBuffer x, int xo, float beta, FloatBuffer y, int yo, FloatBuffer z, int zo,
                      int from, int to) {
        float[] a = new float[CHUNK], b = new float[CHUNK];
        for (int c0 = from; c0 < to; c0 += CHUNK) {
            int n = Math.min(CHUNK, to - c0);
            x.get(xo + c0, a, 0, n);
            y.get(yo + c0, b, 0, n);
            for (int i = 0; i < n; i++) a[i] = alpha * a[i] + beta * b[i];
            z.put(zo + c0, a, 0, n);
        }
    }

    /** y[r, :] += bias for rows [from, to) of width c. */
    static void addRowVector(FloatBuffer y, int yo, FloatBuffer bias, int bo, int c, int from, int to) {
        float[] b = new float[c], a = new float[c];
        bias.get(bo, b, 0, c);
        for (int r = from; r < to; r++) {
            y.get(yo + r * c, a, 0, c);
            for (int j = 0; j < c; j++) a[j] += b[j];
            y.put(yo + r * c, a, 0, c);
        }
    }

    /** Columns are summed in blocks of this width, each block on one thread. */
    static final int COLUMN_BLOCK = 256;

    /** out[j] (+)= Σ_r x[r, j] for the columns of blocks [from, to). */
    static void sumRows(FloatBuffer x, int xo, FloatBuffer out, int oo, int rows, int c, boolean accumulate,
                        int from, int to) {
        float[] s = new float[COLUMN_BLOCK], a = new float[COLUMN_BLOCK];
        for (int blk = from; blk < to; blk++) {
            int j0 = blk * COLUMN_BLOCK, w = Math.min(COLUMN_BLOCK, c - j0);
            java.util.Arrays.fill(s, 0f);
            for (int r = 0; r < rows; r++) {
                x.get(xo + r * c + j0, a, 0, w);
                for (int j = 0; j < w; j++) s[j] += a[j];
            }
            if (accumulate) {
                out.get(oo + j0, a, 0, w);
                for (int j = 0; j < w; j++) s[j] += a[j];
            }
            out.put(oo + j0, s, 0, w);
        }
    }
}
