package relay.stages.tensor.cpu;

import java.nio.FloatBuffer;

/** LayerNorm and RMSNorm over rows of length c; statistics accumulate in double. */
final class NormKernels {
    private NormKernels() {}

    static void layerNorm(FloatBuffer x, int xo, FloatBuffer g, int go, FloatBuffer b, int bo, float eps,
                          FloatBuffer y, int yo, FloatBuffer mean, int mo, FloatBuffer rstd, int ro,
                          int c, int from, int to) {
        for (int r = from; r < to; r++) {
            int xr = xo + r * c, yr = yo + r * c;
            double s = 0;
            for (int j = 0; j < c; j++) s += x.get(xr + j);
            float m = (float) (s / c);
            double v = 0;
            for (int j = 0; j < c; j++) {
                float d = x.get(xr + j) - m;
                v += d * d;
            }
            float rs = (float) (1.0 / Math.sqrt(v / c + eps));
            for (int j = 0; j < c; j++) {
                y.put(yr + j, (x.get(xr + j) - m) * rs * g.get(go + j) + b.get(bo + j));
            }
            mean.put(mo + r, m);
            rstd.put(ro + r, rs);
        }
    }

    /** dx += rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), with x̂ the normalized input and dx̂ = dy·g. */
    static void layerNormBackwardInput(FloatBuffer dy, int dyo, FloatBuffer x, int xo, FloatBuffer g, int go,
                                       FloatBuffer mean, int mo, FloatBuffer rstd, int ro,
                                       FloatBuffer dx, int dxo, int c, int from, int to) {
        for (int r = from; r < to; r++) {
            int xr = xo + r * c, dyr = dyo + r * c, dxr = dxo + r * c;
            float m = mean.get(mo + r), rs = rstd.get(ro + r);
            double sumD = 0, sumDX = 0;
            for (int j = 0; j < c; j++) {
                float dxh = dy.get(dyr + j) * g.get(go + j);
                sumD += dxh;
                sumDX += dxh * (x.get(xr + j) - m) * rs;
            }
            float meanD = (float) (sumD / c), meanDX = (float) (sumDX / c);
            for (int j = 0; j < c; j++) {
                float xh = (x.get(xr + j) - m) * rs;
                float dxh = dy.get(dyr + j) * g.get(go + j);
                dx.put(dxr + j, dx.get(dxr + j) + rs * (dxh - meanD - xh * meanDX));
            }
        }
    }

    /** dGain = Σ_r dy·x̂ and dBias = Σ_r dy over all rows (dBias may be null). */
    static void layerNormBackwardWeights(FloatBuffer dy, int dyo, FloatBuffer x, int xo,
                                         FloatBuffer mean, int mo, FloatBuffer rstd, int ro,
                                         FloatBuffer dg, int dgo, FloatBuffer db, int dbo, int c, int rows) {
        float[] sg = new float[c], sb = new float[c];
        for (int r = 0; r < rows; r++) {
            int xr = xo + r * c, dyr = dyo + r * c;
            float m = mean == null ? 0f : mean.get(mo + r), rs = rstd.get(ro + r);
            for (int j = 0; j < c; j++) {
                float d = dy.get(dyr + j);
                sg[j] += d * (x.get(xr + j) - m) * rs;
                sb[j] += d;
            }
        }
        for (int j = 0; j < c; j++) dg.put(dgo + j, sg[j]);
        if (db != null) for (int j = 0; j < c; j++) db.put(dbo + j, sb[j]);
    }

    static void rmsNorm(FloatBuffer x, int xo, FloatBuffer g, int go, float eps,
                        FloatBuffer y, int yo, FloatBuffer rstd, int ro, int c, int from, int to) {
        for (int r = from; r < to; r++) {
            int xr = xo + r * c, yr = yo + r * c;
            double ss = 0;
            for (int j = 0; j < c; j++) {
                float v = x.get(xr + j);
                ss += v * v;
            }
            float rs = (float) (1.0 / Math.sqrt(ss / c + eps));
            for (int j = 0; j < c; j++) y.put(yr + j, x.get(xr + j) * rs * g.get(go + j));
            rstd.put(ro + r, rs);
        }
    }

    /** dx += rstd·(dx̂ − x̂·mean(dx̂·x̂)) with x̂ = x·rstd, dx̂ = dy·g. */
    static void rmsNormBackwardInput(FloatBuffer dy, int dyo, FloatBuffer x, int xo, FloatBuffer g, int go,
                                     FloatBuffer rstd, int ro, FloatBuffer dx, int dxo, int c, int from, int to) {
        for (int r = from; r < to; r++) {
            int xr = xo + r * c, dyr = dyo + r * c, dxr = dxo + r * c;
            float rs = rstd.get(ro + r);
            double sumDX = 0;
            for (int j = 0; j < c; j++) sumDX += dy.get(dyr + j) * g.get(go + j) * x.get(xr + j) * rs;
            float meanDX = (float) (sumDX / c);
            for (int j = 0; j < c; j++) {
                float xh = x.get(xr + j) * rs;
                float dxh = dy.get(dyr + j) * g.get(go + j);
                dx.put(dxr + j, dx.get(dxr + j) + rs * (dxh - xh * meanDX));
            }
        }
    }
}
