package relay.optimizers;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.tensor.Tensor;
import relay.stages.tensor.cpu.CpuDevice;

/**
 * Each rule over several steps on random tensors against a straightforward float64 implementation of the
 * paper's formulas, written here independently of the device kernels.
 */
class UpdateRulesTest {
    static final int ROWS = 6, COLS = 10, STEPS = 5;
    CpuDevice device;

    @BeforeEach
    void open() {
        device = new CpuDevice("cpu-opt", 1);
    }

    @AfterEach
    void close() {
        assertEquals(0, device.memory().currentTotal(), "everything freed");
        device.close();
    }

    static double[] random(SplittableRandom r, int n, double scale) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = (float) (r.nextGaussian() * scale);
        return v;
    }

    static float[] f(double[] d) {
        float[] x = new float[d.length];
        for (int i = 0; i < d.length; i++) x[i] = (float) d[i];
        return x;
    }

    Parameter param(double[] v, boolean decay, int... shape) {
        return new Parameter("p", device.allocate(Category.PARAMETERS, shape).copyFrom(f(v)), decay);
    }

    /** Runs the rule for STEPS steps with the given gradients; returns the final parameter. */
    float[] run(UpdateRule rule, Parameter p, double[][] grads, float lr, int... shape) {
        for (double[] g : grads) {
            try (Tensor gt = device.allocate(Category.GRADIENTS, shape).copyFrom(f(g))) {
                rule.apply(p, gt, lr);
            }
        }
        float[] out = p.value().toArray();
        rule.close();
        p.close();
        return out;
    }

    static void assertClose(double[] want, float[] got, double rel) {
        double scale = 0;
        for (double w : want) scale = Math.max(scale, Math.abs(w));
        for (int i = 0; i < want.length; i++) {
            assertEquals(want[i], got[i], rel * scale, "element " + i);
        }
    }

    static double[][] gradients(SplittableRandom r, int n) {
        double[][] g = new double[STEPS][];
        for (int s = 0; s < STEPS; s++) g[s] = random(r, n, 1.0 + s);
        return g;
    }

    @Test
    void sgdWithDecoupledDecay() {
        SplittableRandom r = new SplittableRandom(1);
        double[] w = random(r, ROWS * COLS, 1);
        double[][] g = gradients(r, w.length);
        double lr = 0.1, wd = 0.01;
        double[] want = w.clone();
        for (double[] gs : g) for (int i = 0; i < want.length; i++) want[i] = (1 - lr * wd) * want[i] - lr * gs[i];
        assertClose(want, run(new Sgd((float) wd), param(w, true, ROWS, COLS), g, (float) lr, ROWS, COLS), 1e-6);
    }

    @Test
    void adamwWithBiasCorrectionAndDecay() {
        SplittableRandom r = new SplittableRandom(2);
        double[] w = random(r, ROWS * COLS, 1);
        double[][] g = gradients(r, w.length);
        double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
        double[] want = w.clone(), m = new double[w.length], v = new double[w.length];
        for (int t = 1; t <= STEPS; t++) {
            double[] gs = g[t - 1];
            for (int i = 0; i < w.length; i++) {
                m[i] = b1 * m[i] + (1 - b1) * gs[i];
                v[i] = b2 * v[i] + (1 - b2) * gs[i] * gs[i];
                double mh = m[i] / (1 - Math.pow(b1, t)), vh = v[i] / (1 - Math.pow(b2, t));
                want[i] = want[i] - lr * wd * want[i] - lr * mh / (Math.sqrt(vh) + eps);
            }
        }
        assertClose(want, run(new AdamW((float) b1, (float) b2, (float) eps, (float) wd), param(w, true, ROWS, COLS), g,
                (float) lr, ROWS, COLS), 1e-5);
    }

    /** AdaLomo's update in float64, for a matrix (factored) or a vector (unfactored). */
    static double[] adalomo(double[] w, double[][] g, int rows, int cols, boolean matrix, double lr, double wd) {
        double c = -0.8, eps1 = 1e-30, eps2 = 1e-3, d = 1.0;
        double[] theta = w.clone(), rs = new double[rows], cs = new double[cols], vfull = new double[w.length];
        for (int t = 1; t <= g.length; t++) {
            double beta = 1 - Math.pow(t, c);
            double[] gs = g[t - 1], u = new double[w.length];
            if (matrix) {
                double[] rowSum = new double[rows], colSum = new double[cols];
                for (int i = 0; i < rows; i++) {
                    for (int j = 0; j < cols; j++) {
                        double sq = gs[i * cols + j] * gs[i * cols + j] + eps1;
                        rowSum[i] += sq;
                        colSum[j] += sq;
                    }
                }
                double total = 0;
                for (int i = 0; i < rows; i++) {
                    rs[i] = beta * rs[i] + (1 - beta) * rowSum[i];
                    total += rs[i];
                }
                for (int j = 0; j < cols; j++) cs[j] = beta * cs[j] + (1 - beta) * colSum[j];
                for (int i = 0; i < rows; i++) {
                    for (int j = 0; j < cols; j++) u[i * cols + j] = gs[i * cols + j] / Math.sqrt(rs[i] * cs[j] / total);
                }
            } else {
                for (int i = 0; i < w.length; i++) {
                    vfull[i] = beta * vfull[i] + (1 - beta) * (gs[i] * gs[i] + eps1);
                    u[i] = gs[i] / Math.sqrt(vfull[i]);
                }
            }
            double su = 0, st = 0;
            for (int i = 0; i < w.length; i++) {
                su += u[i] * u[i];
                st += theta[i] * theta[i];
            }
            double rmsU = Math.sqrt(su / w.length), rmsT = Math.sqrt(st / w.length);
            double eta = lr * Math.max(eps2, rmsT), norm = Math.max(1, rmsU / d);
            for (int i = 0; i < w.length; i++) theta[i] = (1 - eta * wd) * theta[i] - eta * u[i] / norm;
        }
        return theta;
    }

    @Test
    void adalomoFactoredForMatrices() {
        SplittableRandom r = new SplittableRandom(3);
        double[] w = random(r, ROWS * COLS, 1);
        double[][] g = gradients(r, w.length);
        assertClose(adalomo(w, g, ROWS, COLS, true, 0.05, 0.01),
                run(AdaLomo.defaults(0.01f), param(w, true, ROWS, COLS), g, 0.05f, ROWS, COLS), 1e-5);
    }

    @Test
    void adalomoUnfactoredForVectors() {
        SplittableRandom r = new SplittableRandom(4);
        double[] w = random(r, COLS, 1);
        double[][] g = gradients(r, w.length);
        assertClose(adalomo(w, g, 1, COLS, false, 0.05, 0),
                run(AdaLomo.defaults(0f), param(w, false, COLS), g, 0.05f, COLS), 1e-5);
    }

    @Test
    void adalomoStateIsRowsPlusColumns() {
        AdaLomo rule = AdaLomo.defaults(0f);
        Parameter p = param(new double[ROWS * COLS], true, ROWS, COLS);
        try (Tensor g = device.allocate(Category.GRADIENTS, ROWS, COLS)) {
            rule.apply(p, g, 0.1f);
        }
        assertEquals(4L * (ROWS + COLS), device.memory().current(Category.OPTIMIZER_STATE));
        rule.release(p);
        assertEquals(0, device.memory().current(Category.OPTIMIZER_STATE), "released state is freed");
        rule.close();
        p.close();
    }

    /** GaLore with its projector P held fixed (long gap): Adam on Pᵀ·G, projected back, in float64. */
    @Test
    void galoreProjectedAdam() {
        int m = 8, n = 12, rank = 3;
        SplittableRandom r = new SplittableRandom(5);
        double[] w = random(r, m * n, 1);
        double[][] g = gradients(r, w.length);
        double lr = 0.01, alpha = 0.25, b1 = 0.9, b2 = 0.999, eps = 1e-8;
        GaLore rule = new GaLore(rank, 1000, (float) alpha, (float) b1, (float) b2, (float) eps, 0f, 7, q -> true);
        Parameter p = param(w, true, m, n);
        double[] proj = null;
        for (double[] gs : g) {
            try (Tensor gt = device.allocate(Category.GRADIENTS, m, n).copyFrom(f(gs))) {
                rule.apply(p, gt, (float) lr);
            }
            if (proj == null) {
                float[] pf = rule.projector(p).toArray();
                proj = new double[pf.length];
                for (int i = 0; i < pf.length; i++) proj[i] = pf[i];
            }
        }
        float[] got = p.value().toArray();
        rule.close();
        p.close();
        double[] want = w.clone(), mm = new double[rank * n], vv = new double[rank * n];
        for (int t = 1; t <= STEPS; t++) {
            double[] gs = g[t - 1], rr = new double[rank * n];
            for (int a = 0; a < rank; a++) for (int j = 0; j < n; j++) for (int i = 0; i < m; i++) rr[a * n + j] += proj[i * rank + a] * gs[i * n + j];
            double[] step = new double[rank * n];
            for (int k = 0; k < rr.length; k++) {
                mm[k] = b1 * mm[k] + (1 - b1) * rr[k];
                vv[k] = b2 * vv[k] + (1 - b2) * rr[k] * rr[k];
                step[k] = (mm[k] / (1 - Math.pow(b1, t))) / (Math.sqrt(vv[k] / (1 - Math.pow(b2, t))) + eps);
            }
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int a = 0; a < rank; a++) s += proj[i * rank + a] * step[a * n + j];
                    want[i * n + j] -= lr * alpha * s;
                }
            }
        }
        assertClose(want, got, 1e-5);
    }

    /** On a matrix with a clear spectral gap the projector spans the top singular subspace. */
    @Test
    void projectorFindsTheTopSingularSubspace() {
        int m = 20, n = 30, rank = 4;
        SplittableRandom r = new SplittableRandom(6);
        double[] u = TopSingularVectors.orthonormalize(random(r, m * m, 1), m, m);
        double[] v = TopSingularVectors.orthonormalize(random(r, n * m, 1), n, m);
        double[] g = new double[m * n];
        for (int k = 0; k < m; k++) {
            double s = k < rank ? 10.0 / (k + 1) : 0.01;
            for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) g[i * n + j] += s * u[i * m + k] * v[j * m + k];
        }
        for (boolean right : new boolean[] {false, true}) {
            try (Tensor gt = device.allocate(Category.GRADIENTS, m, n).copyFrom(f(g))) {
                double[] p = TopSingularVectors.of(gt, rank, right, 11);
                int dim = right ? n : m;
                double[] basis = right ? v : u;
                int bw = m;
                // Each true top vector lies in span(P): its projection keeps its unit norm.
                for (int k = 0; k < rank; k++) {
                    double norm = 0;
                    for (int a = 0; a < rank; a++) {
                        double dot = 0;
                        for (int i = 0; i < dim; i++) dot += p[i * rank + a] * basis[i * bw + k];
                        norm += dot * dot;
                    }
                    assertEquals(1.0, norm, 1e-4, (right ? "right" : "left") + " vector " + k);
                }
            }
        }
    }

    @Test
    void schedulesWarmUpThenDecay() {
        Schedule cos = Schedule.warmupCosine(1f, 10, 110, 0.1f);
        assertEquals(0.1f, cos.at(0), 1e-6);
        assertEquals(1f, cos.at(9), 1e-6);
        assertEquals(0.55f, cos.at(60), 1e-5);
        assertEquals(0.1f, cos.at(110), 1e-6);
        Schedule lin = Schedule.warmupLinear(1f, 0, 100, 0f);
        assertEquals(0.5f, lin.at(50), 1e-6);
        assertTrue(cos.at(200) >= 0.1f);
    }
}
