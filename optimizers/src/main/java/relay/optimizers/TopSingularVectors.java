package relay.optimizers;

import java.util.SplittableRandom;
import relay.stages.memory.Category;
import relay.stages.tensor.Device;
import relay.stages.tensor.Mat;
import relay.stages.tensor.Tensor;

/**
 * The top-r singular vectors of a matrix G [m, n], by randomized subspace iteration (Halko, Martinsson
 * and Tropp): Q spans G·Ω for a Gaussian Ω with a few extra columns, refined by power iterations through
 * Gᵀ and G; then the small matrix Qᵀ·G·Gᵀ·Q is diagonalized (cyclic Jacobi) to order and rotate Q. The
 * large products run on G's device; the k×k and m×k work is done in double on the host.
 */
final class TopSingularVectors {
    private static final int OVERSAMPLE = 8;
    private static final int POWER_ITERATIONS = 2;

    private TopSingularVectors() {}

    /**
     * The top-r singular vectors of G [m, n] as columns: left ones (m×r) or, when {@code right}, right ones
     * (n×r) — the left ones of Gᵀ, with the transposes folded into the products.
     */
    static double[] of(Tensor g, int r, boolean right, long seed) {
        Device d = g.device();
        int m = right ? g.cols() : g.rows(), n = right ? g.rows() : g.cols(), k = Math.min(r + OVERSAMPLE, Math.min(m, n));
        double[] q;
        try (Tensor omega = gaussian(d, n, k, seed); Tensor y = d.empty(Category.WORKSPACE, m, k);
             Tensor z = d.empty(Category.WORKSPACE, n, k)) {
            // With A = op(G) [m, n]: y = A·x is gemm(right, …) and z = Aᵀ·y is gemm(!right, …) on the stored G.
            d.gemm(right, false, m, k, n, 1f, Mat.of(g), Mat.of(omega), 0f, Mat.of(y));
            q = orthonormalize(toDoubles(y), m, k);
            for (int it = 0; it < POWER_ITERATIONS; it++) {
                y.copyFrom(toFloats(q));
                d.gemm(!right, false, n, k, m, 1f, Mat.of(g), Mat.of(y), 0f, Mat.of(z));
                z.copyFrom(toFloats(orthonormalize(toDoubles(z), n, k)));
                d.gemm(right, false, m, k, n, 1f, Mat.of(g), Mat.of(z), 0f, Mat.of(y));
                q = orthonormalize(toDoubles(y), m, k);
            }
            // z = Aᵀ·Q [n, k], so S = zᵀ·z = Qᵀ·A·Aᵀ·Q, whose eigenvectors rotate Q onto the singular vectors.
            y.copyFrom(toFloats(q));
            d.gemm(!right, false, n, k, m, 1f, Mat.of(g), Mat.of(y), 0f, Mat.of(z));
            double[] zt = toDoubles(z), s = new double[k * k];
            for (int a = 0; a < k; a++) {
                for (int b = a; b < k; b++) {
                    double sum = 0;
                    for (int i = 0; i < n; i++) sum += zt[i * k + a] * zt[i * k + b];
                    s[a * k + b] = sum;
                    s[b * k + a] = sum;
                }
            }
            double[] w = jacobiEigenvectors(s, k);
            double[] p = new double[m * r];
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < r; j++) {
                    double sum = 0;
                    for (int c = 0; c < k; c++) sum += q[i * k + c] * w[c * k + j];
                    p[i * r + j] = sum;
                }
            }
            return p;
        }
    }

    private static Tensor gaussian(Device d, int rows, int cols, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        float[] v = new float[rows * cols];
        for (int i = 0; i < v.length; i++) {
            double u1 = 1 - rng.nextDouble(), u2 = rng.nextDouble();
            v[i] = (float) (Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
        }
        return d.empty(Category.WORKSPACE, rows, cols).copyFrom(v);
    }

    /** Modified Gram–Schmidt, twice for stability, on the k columns of an m×k row-major matrix. */
    static double[] orthonormalize(double[] a, int m, int k) {
        for (int pass = 0; pass < 2; pass++) {
            for (int j = 0; j < k; j++) {
                for (int p = 0; p < j; p++) {
                    double dot = 0;
                    for (int i = 0; i < m; i++) dot += a[i * k + p] * a[i * k + j];
                    for (int i = 0; i < m; i++) a[i * k + j] -= dot * a[i * k + p];
                }
                double norm = 0;
                for (int i = 0; i < m; i++) norm += a[i * k + j] * a[i * k + j];
                norm = Math.sqrt(norm);
                for (int i = 0; i < m; i++) a[i * k + j] = norm > 1e-30 ? a[i * k + j] / norm : 0;
            }
        }
        return a;
    }

    /** Eigenvectors of a symmetric k×k matrix as columns, ordered by decreasing eigenvalue. */
    static double[] jacobiEigenvectors(double[] s, int k) {
        double[] a = s.clone(), v = new double[k * k];
        for (int i = 0; i < k; i++) v[i * k + i] = 1;
        for (int sweep = 0; sweep < 60; sweep++) {
            double off = 0, diag = 0;
            for (int i = 0; i < k; i++) {
                diag += a[i * k + i] * a[i * k + i];
                for (int j = i + 1; j < k; j++) off += a[i * k + j] * a[i * k + j];
            }
            if (off <= 1e-24 * Math.max(diag, 1e-300)) break;
            for (int p = 0; p < k; p++) {
                for (int q = p + 1; q < k; q++) {
                    double apq = a[p * k + q];
                    if (Math.abs(apq) < 1e-300) continue;
                    double theta = (a[q * k + q] - a[p * k + p]) / (2 * apq);
                    double t = Math.signum(theta) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
                    if (theta == 0) t = 1;
                    double c = 1 / Math.sqrt(t * t + 1), sn = t * c;
                    for (int i = 0; i < k; i++) {
                        double aip = a[i * k + p], aiq = a[i * k + q];
                        a[i * k + p] = c * aip - sn * aiq;
                        a[i * k + q] = sn * aip + c * aiq;
                    }
                    for (int i = 0; i < k; i++) {
                        double api = a[p * k + i], aqi = a[q * k + i];
                        a[p * k + i] = c * api - sn * aqi;
                        a[q * k + i] = sn * api + c * aqi;
                    }
                    for (int i = 0; i < k; i++) {
                        double vip = v[i * k + p], viq = v[i * k + q];
                        v[i * k + p] = c * vip - sn * viq;
                        v[i * k + q] = sn * vip + c * viq;
                    }
                }
            }
        }
        Integer[] order = new Integer[k];
        for (int i = 0; i < k; i++) order[i] = i;
        java.util.Arrays.sort(order, (x, y) -> Double.compare(a[y * k + y], a[x * k + x]));
        double[] sorted = new double[k * k];
        for (int j = 0; j < k; j++) for (int i = 0; i < k; i++) sorted[i * k + j] = v[i * k + order[j]];
        return sorted;
    }

    static double[] toDoubles(Tensor t) {
        float[] f = t.toArray();
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) d[i] = f[i];
        return d;
    }

    static float[] toFloats(double[] d) {
        float[] f = new float[d.length];
        for (int i = 0; i < d.length; i++) f[i] = (float) d[i];
        return f;
    }
}
