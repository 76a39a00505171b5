package relay.stages.tensor.cpu;

import java.nio.FloatBuffer;

/**
 * LayerNorm and RMSNorm over rows of length c; statistics accumulate in double. Rows are copied into
 * heap arrays (see {@link PointwiseKernels}) so the inner loops vectorize.
 */
final class NormKernels {
    private NormKernels() {}

    private static float[] row(FloatBuffer b, int offset, int c) {
        float[] a = new float[c];
        if (b != null) b.get(offset, a, 0, c);
        return a;
    }

    static void layerNorm(FloatBuffer x, int xo, FloatBuffer g, int go, FloatBuffer b, int bo, float eps,
                          FloatBuffer y, int yo, FloatBuffer mean, int mo, FloatBuffer rstd, int ro,
                          int c, int from, int to) {
        float[] gain = row(g, go, c), bias = row(b, bo, c), a = new float[c];
        for (int r = from; r < to; r++) {
            x.get(xo + r * c, a, 0, c);
            float m = (float) (Sums.sum(a, c) / c);
            double v = Sums.squaredDeviations(a, m, c);
            float rs = (float) (1.0 / Math.sqrt(v / c + eps));
            for (int j = 0; j < c; j++) a[j] = (a[j] - m) * rs * gain[j] + bias[j];
            y.put(yo + r * c, a, 0, c);
            mean.put(mo + r, m);
            rstd.put(ro + r, rs);
        }
    }

    /**
     * dx += rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), with x̂ the normalized input and dx̂ = dy·g.
     * A null mean means RMSNorm (x̂ = x·rstd and no mean(dx̂) term).
     */
    static void normBackwardInput(FloatBuffer dy, int dyo, FloatBuffer x, int xo, FloatBuffer g, int go,
                                  FloatBuffer mean, int mo, FloatBuffer rstd, int ro,
                                  FloatBuffer dx, int dxo, int c, int from, int to) {
        float[] gain = row(g, go, c), xh = new float[c], dxh = new float[c], out = new float[c];
        boolean centered = mean != null;
        for (int r = from; r < to; r++) {
            x.get(xo + r * c, xh, 0, c);
            dy.get(dyo + r * c, dxh, 0, c);
            dx.get(dxo + r * c, out, 0, c);
            float m = centered ? mean.get(mo + r) : 0f, rs = rstd.get(ro + r);
            for (int j = 0; j < c; j++) {
                xh[j] = (xh[j] - m) * rs;
                dxh[j] *= gain[j];
            }
            double sumD = centered ? Sums.sum(dxh, c) : 0, sumDX = Sums.dot(dxh, xh, c);
            float meanD = centered ? (float) (sumD / c) : 0f, meanDX = (float) (sumDX / c);
            for (int j = 0; j < c; j++) out[j] += rs * (dxh[j] - meanD - xh[j] * meanDX);
            dx.put(dxo + r * c, out, 0, c);
        }
    }

    /** dGain += Σ_r dy·x̂ and, unless null, dBias += Σ_r dy, over all rows (null mean: RMSNorm). */
    static void normBackwardWeights(FloatBuffer dy, int dyo, FloatBuffer x, int xo,
                                    FloatBuffer mean, int mo, FloatBuffer rstd, int ro,
                                    FloatBuffer dg, int dgo, FloatBuffer db, int dbo, int c, int rows) {
        float[] sg = new float[c], sb = new float[c], a = new float[c], d = new float[c];
        for (int r = 0; r < rows; r++) {
            x.get(xo + r * c, a, 0, c);
            dy.get(dyo + r * c, d, 0, c);
            float m = mean == null ? 0f : mean.get(mo + r), rs = rstd.get(ro + r);
            for (int j = 0; j < c; j++) {
                sg[j] += d[j] * (a[j] - m) * rs;
                sb[j] += d[j];
            }
        }
        addInto(dg, dgo, sg, c);
        if (db != null) addInto(db, dbo, sb, c);
    }

    private static void addInto(FloatBuffer out, int offset, float[] values, int c) {
        float[] old = row(out, offset, c);
        for (int j = 0; j < c; j++) old[j] += values[j];
        out.put(offset, old, 0, c);
    }

    static void rmsNorm(FloatBuffer x, int xo, FloatBuffer g, int go, float eps,
                        FloatBuffer y, int yo, FloatBuffer rstd, int ro, int c, int from, int to) {
        float[] gain = row(g, go, c), a = new float[c];
        for (int r = from; r < to; r++) {
            x.get(xo + r * c, a, 0, c);
            double ss = Sums.squaredDeviations(a, 0f, c);
            float rs = (float) (1.0 / Math.sqrt(ss / c + eps));
            for (int j = 0; j < c; j++) a[j] *= rs * gain[j];
            y.put(yo + r * c, a, 0, c);
            rstd.put(ro + r, rs);
        }
    }
}
