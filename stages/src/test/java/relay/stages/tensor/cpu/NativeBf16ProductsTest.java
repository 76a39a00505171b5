package relay.stages.tensor.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import relay.stages.memory.Category;
import relay.stages.tensor.DType;
import relay.stages.tensor.Mat;
import relay.stages.tensor.Tensor;

/**
 * Products of two bfloat16 operands through oneDNN (where the CPU multiplies bfloat16) and through the widening path,
 * on the same operands: each against the float64 product of the held values, the two against each other, and the
 * native path bit-identical on one thread and on three (its tiles are cut by shape). Shapes are large enough to be cut
 * into tiles and to need scratch memory; operands sit inside larger tensors (leading dimensions past their widths).
 */
class NativeBf16ProductsTest {

    static Stream<Arguments> cases() {
        List<Arguments> cases = new ArrayList<>();
        int[][] shapes = {{7, 5, 9}, {300, 70, 150}, {40, 520, 96}, {256, 3, 700}};
        for (int s = 0; s < shapes.length; s++) {
            for (int trans = 0; trans < 4; trans++) {
                boolean bf16Out = (s + trans) % 2 == 0;
                float alpha = trans == 1 ? 0.5f : 1f, beta = s == 1 ? -1.5f : trans == 2 ? 1f : 0f;
                cases.add(Arguments.of(shapes[s][0], shapes[s][1], shapes[s][2], (trans & 1) != 0, (trans & 2) != 0, alpha, beta, bf16Out));
            }
        }
        return cases.stream();
    }

    @ParameterizedTest(name = "{0}×{1}×{2} transA={3} transB={4} alpha={5} beta={6} bf16 C={7}")
    @MethodSource("cases")
    void nativeAndWidenedProductsMatchTheDoubleProductAndEachOther(int m, int n, int k, boolean ta, boolean tb, float alpha,
                                                                  float beta, boolean bf16Out) {
        assumeTrue(NativeBf16Products.available(), NativeBf16Products.describe());
        long seed = 1_000_003L * m + 1009L * n + k + (ta ? 7 : 0) + (tb ? 13 : 0);
        float[] onOne = null;
        float[] widened = null;
        for (CpuDevice d : new CpuDevice[] {new CpuDevice("one", 1), new CpuDevice("three", 3), CpuDevice.widening("wide", 2)}) {
            try (d) {
                SplittableRandom r = new SplittableRandom(seed);
                Tensor a = operand(d, DType.BF16, ta ? k : m, ta ? m : k, r);
                Tensor b = operand(d, DType.BF16, tb ? n : k, tb ? k : n, r);
                Tensor c = operand(d, bf16Out ? DType.BF16 : DType.F32, m, n, r);
                float[] ha = a.toArray(), hb = b.toArray(), before = c.toArray();
                Mat ma = inner(a), mb = inner(b), mc = inner(c);
                d.gemm(ta, tb, m, n, k, alpha, ma, mb, beta, mc);
                float[] got = c.toArray();
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < n; j++) {
                        double s = 0, abs = 0;
                        for (int p = 0; p < k; p++) {
                            double term = at(ha, ma, ta, i, p) * at(hb, mb, tb, p, j);
                            s += term;
                            abs += Math.abs(term);
                        }
                        int q = (int) (mc.offset() + (long) i * mc.ld() + j);
                        double ref = alpha * s + beta * before[q];
                        double tol = 2e-6 * Math.sqrt(k) * (Math.abs(alpha) * abs + Math.abs(beta * before[q])) + 1e-30;
                        double bound = bf16Out ? Math.ulp((float) Math.abs(ref)) * 32768.0 + 2 * tol : tol;
                        if (!(Math.abs(got[q] - ref) <= bound)) fail(d.name() + ": C[" + i + "," + j + "] = " + got[q] + ", reference " + ref + " ± " + bound);
                    }
                }
                for (int q = 0; q < got.length; q++) {
                    long e = q - mc.offset();
                    boolean inside = e >= 0 && e / mc.ld() < m && e % mc.ld() < n;
                    if (!inside) assertEquals(Float.floatToRawIntBits(before[q]), Float.floatToRawIntBits(got[q]), d.name() + ": outside C, element " + q);
                }
                if (onOne == null) onOne = got;
                else if (widened == null && d.name().equals("three")) assertArrayEquals(onOne, got, "native: one thread against three, bit for bit");
                else widened = got;
                a.close();
                b.close();
                c.close();
                assertEquals(0, d.memory().currentTotal(), d.name() + ": scratch and operands freed");
            }
        }
        // The two paths sum in different orders: they agree to float32 accumulation (a bfloat16 C to a step).
        for (int q = 0; q < onOne.length; q++) {
            double step = bf16Out ? Math.ulp(Math.max(Math.abs(onOne[q]), Math.abs(widened[q]))) * 65536.0 : 0;
            assertTrue(Math.abs(onOne[q] - widened[q]) <= step + 1e-4 * (1 + Math.abs(widened[q])),
                    "native " + onOne[q] + " against widened " + widened[q] + " at " + q);
        }
    }

    /** A rows × cols matrix inside a tensor one row and three columns larger, values in [-1, 1). */
    private static Tensor operand(CpuDevice d, DType dtype, int rows, int cols, SplittableRandom r) {
        Tensor t = d.empty(Category.WORKSPACE, dtype, rows + 1, cols + 3);
        float[] v = new float[(rows + 1) * (cols + 3)];
        for (int i = 0; i < v.length; i++) v[i] = (float) r.nextDouble(-1, 1);
        d.upload(v, t);
        return t;
    }

    private static Mat inner(Tensor t) {
        return Mat.columns(t, 1, 2);
    }

    private static double at(float[] held, Mat x, boolean trans, int i, int j) {
        return held[(int) (x.offset() + (trans ? (long) j * x.ld() + i : (long) i * x.ld() + j))];
    }
}
