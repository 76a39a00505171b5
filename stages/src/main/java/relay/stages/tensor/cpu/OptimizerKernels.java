package relay.stages.tensor.cpu;

import java.nio.FloatBuffer;

/** Elementwise parts of the optimizer updates, on heap chunks like {@link PointwiseKernels}. */
final class OptimizerKernels {
    private OptimizerKernels() {}

    private static final int CHUNK = PointwiseKernels.CHUNK;

    static void clamp(FloatBuffer x, int xo, float limit, int from, int to) {
        float[] a = new float[CHUNK];
        for (int c0 = from; c0 < to; c0 += CHUNK) {
            int n = Math.min(CHUNK, to - c0);
            x.get(xo + c0, a, 0, n);
            for (int i = 0; i < n; i++) a[i] = Math.max(-limit, Math.min(limit, a[i]));
            x.put(xo + c0, a, 0, n);
        }
    }

    static void adamw(FloatBuffer p, int po, FloatBuffer g, int go, FloatBuffer m, int mo, FloatBuffer v, int vo,
                      float lr, float beta1, float beta2, float eps, float decay, float c1, float c2, int from, int to) {
        float[] pa = new float[CHUNK], ga = new float[CHUNK], ma = new float[CHUNK], va = new float[CHUNK];
        float keep = 1f - lr * decay, step = lr / c1, invC2 = 1f / c2;
        for (int c0 = from; c0 < to; c0 += CHUNK) {
            int n = Math.min(CHUNK, to - c0);
            p.get(po + c0, pa, 0, n);
            g.get(go + c0, ga, 0, n);
            m.get(mo + c0, ma, 0, n);
            v.get(vo + c0, va, 0, n);
            for (int i = 0; i < n; i++) {
                float gi = ga[i];
                ma[i] = beta1 * ma[i] + (1f - beta1) * gi;
                va[i] = beta2 * va[i] + (1f - beta2) * gi * gi;
                pa[i] = keep * pa[i] - step * ma[i] / ((float) Math.sqrt(va[i] * invC2) + eps);
            }
            p.put(po + c0, pa, 0, n);
            m.put(mo + c0, ma, 0, n);
            v.put(vo + c0, va, 0, n);
        }
    }

    static void factoredSecondMoment(FloatBuffer g, int go, int rows, int cols, float eps, float beta,
                                     FloatBuffer r, int ro, FloatBuffer c, int co) {
        double[] colSum = new double[cols];
        float[] a = new float[cols];
        for (int i = 0; i < rows; i++) {
            g.get(go + i * cols, a, 0, cols);
            double rowSum = 0;
            for (int j = 0; j < cols; j++) {
                double sq = (double) a[j] * a[j] + eps;
                rowSum += sq;
                colSum[j] += sq;
            }
            r.put(ro + i, (float) (beta * r.get(ro + i) + (1 - beta) * rowSum));
        }
        for (int j = 0; j < cols; j++) c.put(co + j, (float) (beta * c.get(co + j) + (1 - beta) * colSum[j]));
    }

    static void factoredScale(FloatBuffer g, int go, FloatBuffer out, int oo, float[] r, float[] c, float total,
                              int cols, int from, int to) {
        float[] a = new float[cols], invSqrtC = new float[cols];
        for (int j = 0; j < cols; j++) invSqrtC[j] = (float) (1.0 / Math.sqrt(c[j]));
        for (int i = from; i < to; i++) {
            g.get(go + i * cols, a, 0, cols);
            float rowFactor = (float) Math.sqrt(total / r[i]);
            for (int j = 0; j < cols; j++) a[j] *= rowFactor * invSqrtC[j];
            out.put(oo + i * cols, a, 0, cols);
        }
    }

    static void secondMomentScale(FloatBuffer g, int go, FloatBuffer v, int vo, FloatBuffer out, int oo,
                                  float eps, float beta, int from, int to) {
        float[] ga = new float[CHUNK], va = new float[CHUNK];
        for (int c0 = from; c0 < to; c0 += CHUNK) {
            int n = Math.min(CHUNK, to - c0);
            g.get(go + c0, ga, 0, n);
            v.get(vo + c0, va, 0, n);
            for (int i = 0; i < n; i++) {
                va[i] = beta * va[i] + (1f - beta) * (ga[i] * ga[i] + eps);
                ga[i] /= (float) Math.sqrt(va[i]);
            }
            v.put(vo + c0, va, 0, n);
            out.put(oo + c0, ga, 0, n);
        }
    }
}
