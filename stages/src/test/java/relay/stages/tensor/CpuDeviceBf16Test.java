package relay.stages.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import relay.stages.memory.Category;
import relay.stages.tensor.cpu.CpuDevice;

/**
 * bfloat16 tensors on the CPU device: accounting, conversions, stochastic rounding, matrix products with bfloat16
 * operands (against a double reference, including products large enough to be split into panels) and the staging of
 * every other kernel (against the float32 kernel run on the widened values).
 */
class CpuDeviceBf16Test {
    CpuDevice device;

    @BeforeEach
    void open() {
        device = new CpuDevice("t", 2);
    }

    @AfterEach
    void close() {
        assertEquals(0, device.memory().current(Category.WORKSPACE), "no workspace left behind");
        assertEquals(0, device.memory().currentTotal(), "test freed everything");
        device.close();
    }

    private static float[] random(int n, long seed, double lo, double hi) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) r.nextDouble(lo, hi);
        return v;
    }

    private static float[] random(int n, long seed) {
        return random(n, seed, -1, 1);
    }

    private static float[] widenedRound(float[] v) {
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) out[i] = Bf16.widen(Bf16.round(v[i]));
        return out;
    }

    private static void assertBitsEqual(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what + ": length");
        for (int i = 0; i < want.length; i++) {
            if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i])) {
                fail(what + "[" + i + "]: expected " + want[i] + " (0x" + Integer.toHexString(Float.floatToRawIntBits(want[i]))
                        + ") but was " + got[i] + " (0x" + Integer.toHexString(Float.floatToRawIntBits(got[i])) + ")");
            }
        }
    }

    private Tensor tensor(Category c, DType d, float[] values, int... shape) {
        Tensor t = device.empty(c, d, shape);
        device.upload(values, t);
        return t;
    }

    // ---- memory and conversions ----

    @Test
    void ledgerCountsTwoBytesPerElementAndReturnsToZero() {
        Tensor p = device.allocate(Category.PARAMETERS, DType.BF16, 3, 5);
        Tensor g = device.empty(Category.GRADIENTS, DType.BF16, 7);
        Tensor a = device.allocate(Category.ACTIVATIONS, DType.F32, 3, 5);
        assertEquals(30, device.memory().current(Category.PARAMETERS));
        assertEquals(14, device.memory().current(Category.GRADIENTS));
        assertEquals(60, device.memory().current(Category.ACTIVATIONS));
        assertEquals(30, p.bytes());
        assertArrayEquals(new float[15], p.toArray(), "allocate zero-fills");
        Tensor view = p.rowRange(1, 3);
        assertEquals(DType.BF16, view.dtype());
        assertEquals(30, device.memory().current(Category.PARAMETERS), "a view counts nothing");
        p.close();
        g.close();
        a.close();
        assertEquals(0, device.memory().currentTotal());
        // A freed block reused for the other dtype is counted at the new dtype's bytes.
        try (Tensor reuse = device.allocate(Category.PARAMETERS, DType.BF16, 15)) {
            assertEquals(30, device.memory().current(Category.PARAMETERS));
            assertArrayEquals(new float[15], reuse.toArray(), "a reused block is zeroed");
        }
    }

    @Test
    void uploadRoundsToNearestAndDownloadWidens() {
        float[] v = random(1000, 1, -100, 100);
        v[0] = Float.MAX_VALUE;
        v[1] = -0f;
        v[2] = Float.MIN_VALUE;
        v[3] = Float.intBitsToFloat(0x3f818000);
        v[4] = Float.NEGATIVE_INFINITY;
        try (Tensor t = tensor(Category.ACTIVATIONS, DType.BF16, v, 10, 100)) {
            assertBitsEqual(widenedRound(v), t.toArray(), "download");
            float[] exact = t.toArray();
            device.upload(exact, t);
            assertBitsEqual(exact, t.toArray(), "representable values round-trip");
            // A view writes only its own rows.
            float[] rows = random(200, 2);
            device.upload(rows, t.rowRange(3, 5));
            float[] got = t.toArray();
            for (int i = 0; i < 1000; i++) {
                float want = i >= 300 && i < 500 ? Bf16.widen(Bf16.round(rows[i - 300])) : exact[i];
                assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got[i]), "element " + i);
            }
            assertBitsEqual(widenedRound(rows), t.rowRange(3, 5).toArray(), "view download");
        }
        try (Tensor t = tensor(Category.ACTIVATIONS, DType.BF16, new float[] {Float.NaN}, 1)) {
            assertTrue(Float.isNaN(t.toArray()[0]));
        }
    }

    @Test
    void copyConvertsBetweenDtypesAndHonoursOffsets() {
        float[] v = random(600, 3, -5, 5);
        try (Tensor f = tensor(Category.ACTIVATIONS, DType.F32, v, 20, 30);
             Tensor b = device.empty(Category.ACTIVATIONS, DType.BF16, 20, 30);
             Tensor b2 = device.allocate(Category.ACTIVATIONS, DType.BF16, 20, 30);
             Tensor back = device.allocate(Category.ACTIVATIONS, DType.F32, 20, 30)) {
            device.copy(f, b);
            assertBitsEqual(widenedRound(v), b.toArray(), "f32 → bf16");
            device.copy(b, back);
            assertBitsEqual(widenedRound(v), back.toArray(), "f32 → bf16 → f32 equals round");
            device.copy(b, b2);
            assertBitsEqual(widenedRound(v), b2.toArray(), "bf16 → bf16");
            // Between views at different offsets, each dtype both ways.
            device.copy(f.rowRange(2, 5), b2.rowRange(10, 13));
            device.copy(b.rowRange(7, 9), back.rowRange(0, 2));
            device.copy(b.rowRange(1, 2), b2.rowRange(19, 20));
            float[] gb2 = b2.toArray(), gback = back.toArray(), r = widenedRound(v);
            for (int j = 0; j < 90; j++) assertEquals(r[60 + j], gb2[300 + j]);
            for (int j = 0; j < 60; j++) assertEquals(r[210 + j], gback[j]);
            for (int j = 0; j < 30; j++) assertEquals(r[30 + j], gb2[570 + j]);
            assertEquals(r[299], gb2[299], "row before the copied block untouched");
            assertEquals(r[390], gb2[390], "row after the copied block untouched");
        }
        // From another CPU device of this process.
        CpuDevice other = new CpuDevice("u", 1);
        try (Tensor src = other.empty(Category.ACTIVATIONS, DType.F32, 600);
             Tensor dst = device.empty(Category.ACTIVATIONS, DType.BF16, 600)) {
            other.upload(v, src);
            device.copy(src, dst);
            assertBitsEqual(widenedRound(v), dst.toArray(), "copy from another device");
        } finally {
            other.close();
        }
    }

    @Test
    void viewIsLittleEndianBfloat16InPlace() {
        float[] v = random(64, 4, -3, 3);
        try (Tensor t = tensor(Category.COMMUNICATION, DType.BF16, v, 8, 8)) {
            ByteBuffer whole = device.view(t);
            assertEquals(128, whole.remaining());
            for (int i = 0; i < 64; i++) {
                int lo = whole.get(whole.position() + 2 * i) & 0xff, hi = whole.get(whole.position() + 2 * i + 1) & 0xff;
                assertEquals(Bf16.round(v[i]), (short) (lo | hi << 8), "element " + i);
            }
            ByteBuffer rows = device.view(t.rowRange(2, 4));
            assertEquals(32, rows.remaining());
            rows.order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < 16; i++) assertEquals(Bf16.round(v[16 + i]), rows.getShort(rows.position() + 2 * i));
            // In place: a write through the view is the tensor's value.
            rows.putShort(rows.position(), Bf16.round(42f));
            assertEquals(42f, t.toArray()[16]);
        }
    }

    private static ByteBuffer aligned(int bytes, int misalign) {
        ByteBuffer raw = ByteBuffer.allocateDirect(bytes + 128);
        long address = new org.bytedeco.javacpp.Pointer(raw).address();
        int skip = (int) ((64 - address % 64) % 64) + misalign;
        return raw.position(skip).limit(skip + bytes).slice().order(ByteOrder.LITTLE_ENDIAN);
    }

    @Test
    void adoptTakesBfloat16BytesInPlace() {
        float[] v = random(24, 5, -2, 2);
        ByteBuffer bytes = aligned(48, 0);
        for (int i = 0; i < 24; i++) bytes.putShort(2 * i, Bf16.round(v[i]));
        AtomicInteger given = new AtomicInteger();
        Tensor t = device.adopt(bytes, Category.COMMUNICATION, DType.BF16, new int[] {4, 6}, given::incrementAndGet);
        assertTrue(t != null, "an aligned direct buffer is adopted");
        assertEquals(DType.BF16, t.dtype());
        assertEquals(48, device.memory().current(Category.COMMUNICATION));
        assertBitsEqual(widenedRound(v), t.toArray(), "adopted values");
        device.upload(new float[24], t.rowRange(0, 4));
        assertEquals(0, bytes.getShort(10), "the tensor's memory is the buffer");
        t.close();
        assertEquals(1, given.get(), "freeing gives the bytes back once");
        assertEquals(0, device.memory().current(Category.COMMUNICATION));
        assertNull(device.adopt(aligned(48, 2), Category.COMMUNICATION, DType.BF16, new int[] {4, 6}, () -> {}), "misaligned");
        assertNull(device.adopt(aligned(48, 0), Category.COMMUNICATION, DType.BF16, new int[] {4, 7}, () -> {}), "wrong size");
    }

    @Test
    void readAndWriteFloatBuffersAtTheirPositions() {
        float[] v = random(50, 6, -9, 9);
        try (Tensor t = device.allocate(Category.ACTIVATIONS, DType.BF16, 5, 6)) {
            FloatBuffer src = FloatBuffer.wrap(v);
            src.position(7);
            device.write(src, t);
            assertEquals(37, src.position());
            float[] want = new float[30];
            for (int i = 0; i < 30; i++) want[i] = Bf16.widen(Bf16.round(v[7 + i]));
            assertBitsEqual(want, t.toArray(), "written");
            FloatBuffer dst = FloatBuffer.allocate(40);
            dst.position(3);
            device.read(t.rowRange(1, 3), dst);
            assertEquals(15, dst.position());
            for (int i = 0; i < 12; i++) assertEquals(want[6 + i], dst.get(3 + i));
            assertEquals(0f, dst.get(2));
            assertEquals(0f, dst.get(15));
            FloatBuffer shortSrc = FloatBuffer.allocate(10);
            try {
                device.write(shortSrc, t);
                fail("too few values accepted");
            } catch (IllegalArgumentException expected) {
                // refused
            }
        }
    }

    @Test
    void fillRoundsTheValue() {
        try (Tensor t = device.empty(Category.ACTIVATIONS, DType.BF16, 3, 4)) {
            device.fill(t, 0.1f);
            for (float x : t.toArray()) assertEquals(Bf16.widen(Bf16.round(0.1f)), x);
        }
    }

    // ---- stochastic rounding on the device ----

    @Test
    void roundStochasticIsDeterministicPerKeyAndUnbiased() {
        int n = 1 << 20;
        // Between two neighbours 1 and 1 + 2^-7: 30% of the way up.
        float down = 1f, up = Bf16.widen((short) 0x3f81);
        float x = (float) (down + 0.3 * (up - down));
        double p = (x - (double) down) / ((double) up - down);
        float[] values = new float[n];
        java.util.Arrays.fill(values, x);
        try (Tensor src = tensor(Category.WORKSPACE, DType.F32, values, n);
             Tensor a = device.empty(Category.PARAMETERS, DType.BF16, n);
             Tensor b = device.empty(Category.PARAMETERS, DType.BF16, n);
             Tensor c = device.empty(Category.PARAMETERS, DType.BF16, n)) {
            device.roundStochastic(src, a, 17);
            device.roundStochastic(src, b, 17);
            device.roundStochastic(src, c, 18);
            float[] ga = a.toArray(), gb = b.toArray(), gc = c.toArray();
            assertBitsEqual(ga, gb, "same key");
            long ups = 0, differ = 0;
            for (int i = 0; i < n; i++) {
                assertTrue(ga[i] == down || ga[i] == up, "element " + i + " is a neighbour: " + ga[i]);
                if (ga[i] == up) ups++;
                if (ga[i] != gc[i]) differ++;
                if (i < 1000) assertEquals(Bf16.stochastic(x, Bf16.randomBits(17, i)), Bf16.round(ga[i]), "element " + i + " uses randomBits(key, i)");
            }
            double sd = Math.sqrt(n * p * (1 - p));
            assertEquals(n * p, ups, 6 * sd, "ups are Binomial(n, p)");
            // Two keys disagree where one goes up and the other down: 2p(1−p) of the elements.
            double pd = 2 * p * (1 - p);
            assertEquals(n * pd, differ, 6 * Math.sqrt(n * pd * (1 - pd)), "another key, another rounding");
            double mean = 0;
            for (float g : ga) mean += g;
            mean /= n;
            assertEquals(x, mean, 6 * (up - down) * Math.sqrt(p * (1 - p) / n), "mean is x");
        }
    }

    @Test
    void roundStochasticIntoAViewIndexesTheViewsElements() {
        float[] v = random(40, 8);
        try (Tensor src = tensor(Category.WORKSPACE, DType.F32, v, 40);
             Tensor dst = device.allocate(Category.PARAMETERS, DType.BF16, 4, 20)) {
            device.roundStochastic(src.view(2, 20), dst.rowRange(1, 3), 99);
            float[] got = dst.toArray();
            for (int i = 0; i < 20; i++) assertEquals(0f, got[i]);
            for (int i = 60; i < 80; i++) assertEquals(0f, got[i]);
            for (int i = 0; i < 40; i++) {
                assertEquals(Bf16.stochastic(v[i], Bf16.randomBits(99, i)), Bf16.round(got[20 + i]), "element " + i);
                float lo = Float.intBitsToFloat(Float.floatToRawIntBits(v[i]) & 0xffff0000);
                float hi = Float.intBitsToFloat((Float.floatToRawIntBits(v[i]) & 0xffff0000) + 0x10000);
                assertTrue(got[20 + i] == lo || got[20 + i] == hi);
            }
        }
    }

    /** Stochastic rounding and staged kernels give the same bits on one thread as on several (keyed by element, not thread). */
    @Test
    void resultsDoNotDependOnTheThreadCount() {
        int rows = 512, cols = 256;
        float[] x = random(rows * cols, 70, -3, 3), gain = random(cols, 71), bias = random(cols, 72);
        float[][] results = new float[2][];
        float[][] rounded = new float[2][];
        CpuDevice[] devices = {new CpuDevice("one", 1), new CpuDevice("four", 4)};
        try {
            for (int d = 0; d < 2; d++) {
                CpuDevice dev = devices[d];
                try (Tensor xt = dev.empty(Category.ACTIVATIONS, DType.BF16, rows, cols);
                     Tensor g = dev.empty(Category.PARAMETERS, DType.BF16, cols);
                     Tensor b = dev.empty(Category.PARAMETERS, DType.F32, cols);
                     Tensor y = dev.empty(Category.ACTIVATIONS, DType.BF16, rows, cols);
                     Tensor mean = dev.empty(Category.ACTIVATIONS, DType.F32, rows);
                     Tensor rstd = dev.empty(Category.ACTIVATIONS, DType.BF16, rows);
                     Tensor src = dev.empty(Category.WORKSPACE, DType.F32, rows * cols);
                     Tensor dst = dev.empty(Category.PARAMETERS, DType.BF16, rows * cols)) {
                    dev.upload(x, xt);
                    dev.upload(gain, g);
                    dev.upload(bias, b);
                    dev.layerNorm(xt, g, b, 1e-5f, y, mean, rstd);
                    results[d] = y.toArray();
                    dev.upload(x, src);
                    dev.roundStochastic(src, dst, 5);
                    rounded[d] = dst.toArray();
                }
                assertEquals(0, dev.memory().currentTotal());
            }
        } finally {
            for (CpuDevice dev : devices) dev.close();
        }
        assertBitsEqual(results[0], results[1], "layerNorm with bf16 x, gain, y and rstd");
        assertBitsEqual(rounded[0], rounded[1], "roundStochastic");
    }

    // ---- matrix products ----

    static Stream<Arguments> gemmCases() {
        List<Arguments> cases = new ArrayList<>();
        for (int dtypes = 0; dtypes < 8; dtypes++) {
            for (int trans = 0; trans < 4; trans++) cases.add(Arguments.of((dtypes & 1) != 0, (dtypes & 2) != 0, (dtypes & 4) != 0, (trans & 1) != 0, (trans & 2) != 0));
        }
        return cases.stream();
    }

    /** One matrix of a product: its tensor, where op(X)'s values sit in it, and its values as the device holds them. */
    private record Operand(Tensor tensor, Mat mat, float[] held) implements AutoCloseable {
        double at(boolean trans, int i, int j) {
            long p = mat.offset() + (trans ? (long) j * mat.ld() + i : (long) i * mat.ld() + j);
            return held[(int) p];
        }

        @Override
        public void close() {
            tensor.close();
        }
    }

    /** A rows × cols matrix of op-storage inside a tensor with extra columns and a row offset (a block of it). */
    private Operand operand(boolean bf16, int rows, int cols, int padRows, int padCols, long seed) {
        int width = cols + padCols, height = rows + padRows;
        Tensor t = tensor(Category.WORKSPACE, bf16 ? DType.BF16 : DType.F32, random(height * width, seed), height, width);
        Mat m = Mat.columns(t, padRows, padCols / 2);
        return new Operand(t, m, t.toArray());
    }

    private static double bf16Ulp(double x) {
        return Math.ulp((float) Math.abs(x)) * 65536.0;
    }

    /**
     * Checks C(i, j) against the double product of the held values: within float32 accumulation error of it, and for a
     * bfloat16 C, within that plus half a bfloat16 step (to nearest).
     */
    private static void checkEntry(boolean transA, boolean transB, int i, int j, int k, float alpha, Operand a,
                                   Operand b, float beta, double cBefore, float got, boolean cBf16, double rel) {
        double s = 0, abs = 0;
        for (int p = 0; p < k; p++) {
            double term = a.at(transA, i, p) * b.at(transB, p, j);
            s += term;
            abs += Math.abs(term);
        }
        double ref = alpha * s + beta * cBefore;
        double tol = rel * (Math.abs(alpha) * abs + Math.abs(beta * cBefore)) + 1e-30;
        double bound = cBf16 ? 0.5 * bf16Ulp(Math.abs(ref) + tol) + tol : tol;
        if (!(Math.abs(got - ref) <= bound)) {
            fail("C[" + i + "," + j + "] = " + got + ", reference " + ref + " ± " + bound + (cBf16 ? " (bf16 C)" : ""));
        }
    }

    @ParameterizedTest(name = "bf16 A={0} B={1} C={2}, transA={3} transB={4}")
    @MethodSource("gemmCases")
    void gemmWithBfloat16OperandsMatchesDoubleReference(boolean aBf, boolean bBf, boolean cBf, boolean ta, boolean tb) {
        SplittableRandom r = new SplittableRandom(31L * (aBf ? 1 : 0) + 7L * (bBf ? 1 : 0) + (cBf ? 3 : 0) + (ta ? 100 : 0) + (tb ? 1000 : 0));
        for (int round = 0; round < 3; round++) {
            int m = r.nextInt(1, 12), n = r.nextInt(1, 12), k = r.nextInt(1, 20);
            float alpha = 0.75f, beta = round == 0 ? 0f : -1.5f;
            try (Operand a = operand(aBf, ta ? k : m, ta ? m : k, 1, 3, r.nextLong());
                 Operand b = operand(bBf, tb ? n : k, tb ? k : n, 2, 1, r.nextLong());
                 Operand c = operand(cBf, m, n, 1, 2, r.nextLong());
                 Tensor c32 = tensor(Category.WORKSPACE, DType.F32, c.held(), c.tensor().shape())) {
                device.gemm(ta, tb, m, n, k, alpha, a.mat(), b.mat(), beta, c.mat());
                float[] got = c.tensor().toArray();
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < n; j++) {
                        int p = (int) (c.mat().offset() + (long) i * c.mat().ld() + j);
                        checkEntry(ta, tb, i, j, k, alpha, a, b, beta, c.held()[p], got[p], cBf, 1e-5);
                    }
                }
                for (int p = 0; p < got.length; p++) {
                    long q = p - c.mat().offset();
                    boolean inside = q >= 0 && q / c.mat().ld() < m && q % c.mat().ld() < n;
                    if (!inside) assertEquals(Float.floatToRawIntBits(c.held()[p]), Float.floatToRawIntBits(got[p]), "outside C, element " + p);
                }
                // The same product on float32 copies of the held values: a bfloat16 C is that result rounded (within a step).
                try (Tensor a32 = tensor(Category.WORKSPACE, DType.F32, a.held(), a.tensor().shape());
                     Tensor b32 = tensor(Category.WORKSPACE, DType.F32, b.held(), b.tensor().shape())) {
                    device.gemm(ta, tb, m, n, k, alpha, new Mat(a32, a.mat().offset(), a.mat().ld()),
                            new Mat(b32, b.mat().offset(), b.mat().ld()), beta, new Mat(c32, c.mat().offset(), c.mat().ld()));
                    float[] want = c32.toArray();
                    for (int p = 0; p < got.length; p++) {
                        if (!cBf) {
                            assertEquals(want[p], got[p], 1e-6 * (1 + Math.abs(want[p])), "f32 C against the f32 product, element " + p);
                        } else {
                            float rounded = Bf16.widen(Bf16.round(want[p]));
                            double step = bf16Ulp(Math.max(Math.abs(rounded), Math.abs(got[p])));
                            assertTrue(Math.abs(rounded - got[p]) <= step, "bf16 C within a step of round(f32 product), element " + p
                                    + ": " + got[p] + " vs " + rounded);
                        }
                    }
                }
            }
            assertEquals(0, device.memory().current(Category.WORKSPACE));
        }
    }

    /** Checks a sample of C's entries (all of them when C is small) against the double reference. */
    private void checkLarge(boolean ta, boolean tb, int m, int n, int k, float alpha, Operand a, Operand b, float beta, Operand c,
                            int samples) {
        long before = device.memory().current(Category.WORKSPACE);
        device.gemm(ta, tb, m, n, k, alpha, a.mat(), b.mat(), beta, c.mat());
        assertEquals(before, device.memory().current(Category.WORKSPACE), "panels are freed");
        float[] got = c.tensor().toArray();
        boolean cBf = c.tensor().dtype() == DType.BF16;
        SplittableRandom r = new SplittableRandom(m * 31L + n);
        long total = (long) m * n;
        for (int s = 0; s < Math.min(samples, total); s++) {
            long e = total <= samples ? s : r.nextLong(total);
            // Always include the corners and the entries around every half (where panels meet).
            if (s < 12) {
                int[] is = {0, m / 2 - 1, m / 2, m - 1}, js = {0, n / 2, n - 1};
                e = (long) Math.max(0, is[s / 3]) * n + js[s % 3];
            }
            int i = (int) (e / n), j = (int) (e % n);
            int p = (int) (c.mat().offset() + (long) i * c.mat().ld() + j);
            checkEntry(ta, tb, i, j, k, alpha, a, b, beta, c.held()[p], got[p], cBf, 2e-5);
        }
        // Outside the block, nothing moved.
        for (int p = 0; p < got.length; p++) {
            long q = p - c.mat().offset();
            boolean inside = q >= 0 && q / c.mat().ld() < m && q % c.mat().ld() < n;
            if (!inside && Float.floatToRawIntBits(c.held()[p]) != Float.floatToRawIntBits(got[p])) fail("outside C, element " + p + " changed");
        }
    }

    /** Logits: hidden · Eᵀ with E a bfloat16 [5000 × 900] embedding, larger than a panel, so n is split. */
    @Test
    void gemmSplitsTransposedBfloat16BOverN() {
        int m = 6, n = 5000, k = 900;
        try (Operand a = operand(false, m, k, 2, 40, 1);
             Operand b = operand(true, n, k, 0, 0, 2);
             Operand c = operand(false, m, n, 0, 0, 3)) {
            checkLarge(false, true, m, n, k, 1f, a, b, 0f, c, Integer.MAX_VALUE);
        }
        try (Operand a = operand(false, m, k, 0, 0, 4);
             Operand b = operand(true, n, k, 0, 0, 5);
             Operand c = operand(true, m, n, 1, 3, 6)) {
            checkLarge(false, true, m, n, k, 0.5f, a, b, 2f, c, Integer.MAX_VALUE);
        }
    }

    /** A bfloat16 B [5000 × 900] not transposed: k is split and the halves accumulate. */
    @Test
    void gemmSplitsBfloat16BOverK() {
        int m = 6, n = 900, k = 5000;
        try (Operand a = operand(false, m, k, 1, 5, 7);
             Operand b = operand(true, k, n, 0, 0, 8);
             Operand c = operand(false, m, n, 2, 7, 9)) {
            checkLarge(false, false, m, n, k, -0.5f, a, b, 1.5f, c, Integer.MAX_VALUE);
        }
        try (Operand a = operand(true, k, m, 0, 0, 10);
             Operand b = operand(true, k, n, 3, 10, 11);
             Operand c = operand(true, m, n, 0, 0, 12)) {
            checkLarge(true, false, m, n, k, 2f, a, b, -1f, c, Integer.MAX_VALUE);
        }
    }

    /** A bfloat16 A [5000 × 900]: split over m when not transposed, over k when transposed. */
    @Test
    void gemmSplitsLargeBfloat16A() {
        try (Operand a = operand(true, 5000, 900, 1, 20, 13);
             Operand b = operand(false, 900, 4, 0, 0, 14);
             Operand c = operand(false, 5000, 4, 0, 2, 15)) {
            checkLarge(false, false, 5000, 4, 900, 0.25f, a, b, 3f, c, 3000);
        }
        try (Operand a = operand(true, 5000, 900, 0, 0, 16);
             Operand b = operand(false, 4, 5000, 0, 0, 17);
             Operand c = operand(false, 900, 4, 0, 0, 18)) {
            checkLarge(true, true, 900, 4, 5000, 1.25f, a, b, -0.5f, c, Integer.MAX_VALUE);
        }
    }

    /** A bfloat16 C of 3000 × 1500 (a block of a wider tensor): split over m, each half widened and rounded back. */
    @Test
    void gemmSplitsLargeBfloat16C() {
        int m = 3000, n = 1500, k = 8;
        try (Operand a = operand(false, m, k, 0, 0, 19);
             Operand b = operand(false, k, n, 0, 0, 20);
             Operand c = operand(true, m, n, 2, 100, 21)) {
            checkLarge(false, false, m, n, k, 1f, a, b, 0.5f, c, 20000);
        }
        try (Operand a = operand(true, k, m, 0, 0, 22);
             Operand b = operand(true, n, k, 0, 0, 23);
             Operand c = operand(true, m, n, 0, 0, 24)) {
            checkLarge(true, true, m, n, k, -1f, a, b, 0f, c, 20000);
        }
    }

    /** Every operand bfloat16 and larger than a panel at once, each transpose combination. */
    @Test
    void gemmSplitsAllThreeAtOnce() {
        int m = 2100, n = 2050, k = 2100;
        for (int trans = 0; trans < 4; trans++) {
            boolean ta = (trans & 1) != 0, tb = (trans & 2) != 0;
            try (Operand a = operand(true, ta ? k : m, ta ? m : k, 1, 2, 25 + trans);
                 Operand b = operand(true, tb ? n : k, tb ? k : n, 0, 0, 30 + trans);
                 Operand c = operand(true, m, n, 1, 4, 35 + trans)) {
                checkLarge(ta, tb, m, n, k, 0.5f, a, b, 1f, c, 1500);
            }
        }
    }

    /**
     * With beta = 0 a bfloat16 C's old values must not matter, even when the workspace it is widened into is a reused
     * block full of NaN: C = 0·NaN would be NaN.
     */
    @Test
    void gemmWithBetaZeroIgnoresOldBfloat16CAndStaleWorkspace() {
        int m = 7, n = 9, k = 5;
        float[] nan = new float[m * n];
        java.util.Arrays.fill(nan, Float.NaN);
        for (int i = 0; i < 4; i++) tensor(Category.WORKSPACE, DType.F32, nan, m, n).close();
        try (Operand a = operand(true, m, k, 0, 0, 60);
             Operand b = operand(false, k, n, 0, 0, 61);
             Tensor c = tensor(Category.ACTIVATIONS, DType.BF16, nan, m, n)) {
            device.gemm(false, false, m, n, k, 1f, a.mat(), b.mat(), 0f, Mat.of(c));
            float[] got = c.toArray();
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) checkEntry(false, false, i, j, k, 1f, a, b, 0f, 0, got[i * n + j], true, 1e-5);
            }
        }
    }

    @Test
    void embeddingReadsABfloat16TableViewDirectly() {
        float[] v = random(12 * C, 62);
        int[] tokens = {4, 0, 3, 4, 1};
        try (Tensor table = tensor(Category.PARAMETERS, DType.BF16, v, 12, C);
             Tensor out = device.empty(Category.ACTIVATIONS, DType.F32, tokens.length, C)) {
            device.memory().resetPeaks();
            device.embedding(tokens, table.rowRange(3, 8), out);
            assertEquals(0, device.memory().peak(Category.WORKSPACE), "no staging for the table");
            float[] got = out.toArray();
            for (int i = 0; i < tokens.length; i++) {
                for (int j = 0; j < C; j++) {
                    assertEquals(Bf16.widen(Bf16.round(v[(3 + tokens[i]) * C + j])), got[i * C + j], "row " + i + ", column " + j);
                }
            }
        }
    }

    // ---- staged kernels ----

    /** One argument of a kernel: its shape, whether it may be bfloat16, and the range its values are drawn from. */
    private record Arg(int[] shape, boolean mayBeBf16, double lo, double hi) {
        static Arg of(int... shape) {
            return new Arg(shape, true, -1, 1);
        }

        static Arg positive(int... shape) {
            return new Arg(shape, true, 0.5, 2);
        }

        static Arg f32Only(int... shape) {
            return new Arg(shape, false, -1, 1);
        }
    }

    /**
     * Runs the kernel on every choice of which arguments are bfloat16 and compares each argument afterwards, bit for
     * bit, with the float32 kernel run on float32 tensors holding the widened values, rounded to nearest where the
     * argument is bfloat16; read-only arguments must come back unchanged, and any value returned must be the same.
     */
    private void checkStaged(String name, Function<Tensor[], Double> kernel, Arg... args) {
        int optional = 0;
        for (Arg a : args) if (a.mayBeBf16()) optional++;
        for (int choice = 1; choice < (1 << optional); choice++) {
            Tensor[] mixed = new Tensor[args.length], oracle = new Tensor[args.length];
            StringBuilder which = new StringBuilder();
            try {
                int bit = 0;
                for (int i = 0; i < args.length; i++) {
                    boolean bf = args[i].mayBeBf16() && (choice >> bit++ & 1) != 0;
                    if (!args[i].mayBeBf16()) bit--;
                    if (bf) which.append(i).append(' ');
                    int size = (int) Tensor.sizeOf(args[i].shape());
                    mixed[i] = tensor(Category.ACTIVATIONS, bf ? DType.BF16 : DType.F32,
                            random(size, name.hashCode() * 1000L + choice * 10L + i, args[i].lo(), args[i].hi()), args[i].shape());
                    oracle[i] = tensor(Category.ACTIVATIONS, DType.F32, mixed[i].toArray(), args[i].shape());
                }
                Double got = kernel.apply(mixed);
                assertEquals(0, device.memory().current(Category.WORKSPACE), name + ": staging left workspace");
                Double want = kernel.apply(oracle);
                if (want != null) assertEquals(want, got, 0.0, name + " with bf16 args " + which + ": returned value");
                for (int i = 0; i < args.length; i++) {
                    float[] exp = oracle[i].toArray();
                    if (mixed[i].dtype() == DType.BF16) exp = widenedRound(exp);
                    assertBitsEqual(exp, mixed[i].toArray(), name + " with bf16 args " + which + ": argument " + i);
                }
            } finally {
                for (Tensor t : mixed) if (t != null) t.close();
                for (Tensor t : oracle) if (t != null) t.close();
            }
        }
    }

    private static final int R = 5, C = 12;

    private static Double none(Runnable r) {
        r.run();
        return null;
    }

    @Test
    void normsStageExactly() {
        checkStaged("layerNorm", t -> none(() -> device.layerNorm(t[0], t[1], t[2], 1e-5f, t[3], t[4], t[5])),
                Arg.of(R, C), Arg.of(C), Arg.of(C), Arg.of(R, C), Arg.of(R), Arg.of(R));
        checkStaged("layerNormBackward", t -> none(() -> device.layerNormBackward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7])),
                Arg.of(R, C), Arg.of(R, C), Arg.of(C), Arg.of(R), Arg.positive(R), Arg.of(R, C), Arg.of(C), Arg.of(C));
        checkStaged("layerNormBackward without dx and dBias", t -> none(() -> device.layerNormBackward(t[0], t[1], t[2], t[3], t[4], null, t[5], null)),
                Arg.of(R, C), Arg.of(R, C), Arg.of(C), Arg.of(R), Arg.positive(R), Arg.of(C));
        checkStaged("layerNormBackward without weight gradients", t -> none(() -> device.layerNormBackward(t[0], t[1], t[2], t[3], t[4], t[5], null, null)),
                Arg.of(R, C), Arg.of(R, C), Arg.of(C), Arg.of(R), Arg.positive(R), Arg.of(R, C));
        checkStaged("rmsNorm", t -> none(() -> device.rmsNorm(t[0], t[1], 1e-6f, t[2], t[3])),
                Arg.of(R, C), Arg.of(C), Arg.of(R, C), Arg.of(R));
        checkStaged("rmsNormBackward", t -> none(() -> device.rmsNormBackward(t[0], t[1], t[2], t[3], t[4], t[5])),
                Arg.of(R, C), Arg.of(R, C), Arg.of(C), Arg.positive(R), Arg.of(R, C), Arg.of(C));
        checkStaged("rmsNormBackward without dx", t -> none(() -> device.rmsNormBackward(t[0], t[1], t[2], t[3], null, t[4])),
                Arg.of(R, C), Arg.of(R, C), Arg.of(C), Arg.positive(R), Arg.of(C));
    }

    @Test
    void pointwiseKernelsStageExactly() {
        checkStaged("gelu", t -> none(() -> device.gelu(t[0], t[1])), Arg.of(R, C), Arg.of(R, C));
        checkStaged("geluBackward", t -> none(() -> device.geluBackward(t[0], t[1], t[2])), Arg.of(R, C), Arg.of(R, C), Arg.of(R, C));
        checkStaged("swiglu", t -> none(() -> device.swiglu(t[0], t[1], t[2])), Arg.of(R, C), Arg.of(R, C), Arg.of(R, C));
        checkStaged("swigluBackward", t -> none(() -> device.swigluBackward(t[0], t[1], t[2], t[3], t[4])),
                Arg.of(R, C), Arg.of(R, C), Arg.of(R, C), Arg.of(R, C), Arg.of(R, C));
        checkStaged("add", t -> none(() -> device.add(t[0], t[1], t[2])), Arg.of(R, C), Arg.of(R, C), Arg.of(R, C));
        checkStaged("add into a", t -> none(() -> device.add(t[0], t[1], t[0])), Arg.of(R, C), Arg.of(R, C));
        checkStaged("add into b", t -> none(() -> device.add(t[0], t[1], t[1])), Arg.of(R, C), Arg.of(R, C));
        checkStaged("axpy", t -> none(() -> device.axpy(0.3f, t[0], t[1])), Arg.of(R, C), Arg.of(R, C));
        checkStaged("axpby", t -> none(() -> device.axpby(0.3f, t[0], -0.7f, t[1])), Arg.of(R, C), Arg.of(R, C));
        checkStaged("scale", t -> none(() -> device.scale(t[0], 1.7f)), Arg.of(R, C));
        checkStaged("clamp", t -> none(() -> device.clamp(t[0], 0.4f)), Arg.of(R, C));
        checkStaged("fill", t -> none(() -> device.fill(t[0], 0.3f)), Arg.of(R, C));
        checkStaged("addRowVector", t -> none(() -> device.addRowVector(t[0], t[1])), Arg.of(R, C), Arg.of(C));
        checkStaged("sumRows", t -> none(() -> device.sumRows(t[0], t[1], false)), Arg.of(R, C), Arg.of(C));
        checkStaged("sumRows accumulating", t -> none(() -> device.sumRows(t[0], t[1], true)), Arg.of(R, C), Arg.of(C));
        checkStaged("sumOfSquares", t -> device.sumOfSquares(t[0]), Arg.of(R, C));
    }

    /** Tensors large enough to be split over both threads: widened and rounded alike in every share. */
    @Test
    void pointwiseKernelsStageLargeTensorsExactly() {
        int rows = 300, cols = 200;
        checkStaged("gelu", t -> none(() -> device.gelu(t[0], t[1])), Arg.of(rows, cols), Arg.of(rows, cols));
        checkStaged("geluBackward", t -> none(() -> device.geluBackward(t[0], t[1], t[2])),
                Arg.of(rows, cols), Arg.of(rows, cols), Arg.of(rows, cols));
        checkStaged("add into b", t -> none(() -> device.add(t[0], t[1], t[1])), Arg.of(rows, cols), Arg.of(rows, cols));
        checkStaged("addRowVector", t -> none(() -> device.addRowVector(t[0], t[1])), Arg.of(rows, cols), Arg.of(cols));
        checkStaged("layerNorm", t -> none(() -> device.layerNorm(t[0], t[1], t[2], 1e-5f, t[3], t[4], t[5])),
                Arg.of(rows, cols), Arg.of(cols), Arg.of(cols), Arg.of(rows, cols), Arg.of(rows), Arg.of(rows));
        checkStaged("rmsNorm", t -> none(() -> device.rmsNorm(t[0], t[1], 1e-6f, t[2], t[3])),
                Arg.of(rows, cols), Arg.of(cols), Arg.of(rows, cols), Arg.of(rows));
        checkStaged("swigluBackward", t -> none(() -> device.swigluBackward(t[0], t[1], t[2], t[3], t[4])),
                Arg.of(rows, cols), Arg.of(rows, cols), Arg.of(rows, cols), Arg.of(rows, cols), Arg.of(rows, cols));
        checkStaged("causalSoftmax", t -> none(() -> device.causalSoftmax(t[0], 150, 150, 0, null)), Arg.of(4, 150, 150));
        checkStaged("softmaxBackward", t -> none(() -> device.softmaxBackward(t[0], t[1], 150, 150, 0, null)),
                Arg.positive(4, 150, 150), Arg.of(4, 150, 150));
    }

    @Test
    void attentionAndLossKernelsStageExactly() {
        checkStaged("causalSoftmax", t -> none(() -> device.causalSoftmax(t[0], 6, 6, 0, null)), Arg.of(2, 6, 6));
        checkStaged("causalSoftmax windowed", t -> none(() -> device.causalSoftmax(t[0], 6, 6, 3, null)), Arg.of(2, 6, 6));
        checkStaged("causalSoftmax decoding", t -> none(() -> device.causalSoftmax(t[0], 2, 6, 0, null)), Arg.of(3, 2, 6));
        checkStaged("causalSoftmax packed", t -> none(() -> device.causalSoftmax(t[0], 6, 6, 0, new int[] {0, 1, 2, 0, 1, 2})), Arg.of(2, 6, 6));
        checkStaged("softmaxBackward", t -> none(() -> device.softmaxBackward(t[0], t[1], 6, 6, 0, null)), Arg.positive(2, 6, 6), Arg.of(2, 6, 6));
        checkStaged("rope", t -> none(() -> device.rope(t[0], 3, 2, new double[] {1, 0.1}, 1.0, false, 0, null)), Arg.of(6, 8));
        checkStaged("rope inverse", t -> none(() -> device.rope(t[0], 3, 2, new double[] {1, 0.1}, 1.0, true, 1, new int[] {0, 1, 2, 2, 1, 0})), Arg.of(6, 8));
        int[] targets = {9, 3, -1, 10, 0, 7, 2};
        checkStaged("crossEntropy with gradient", t -> device.crossEntropy(t[0], targets, 1, 0.25f), Arg.of(R, 11));
        checkStaged("crossEntropy loss only", t -> device.crossEntropy(t[0], targets, 2, 0f), Arg.of(R, 11));
        int[] tokens = {3, 0, 8, 3};
        checkStaged("embedding", t -> none(() -> device.embedding(tokens, t[0], t[1])), Arg.of(9, C), Arg.f32Only(4, C));
        checkStaged("embeddingBackward", t -> none(() -> device.embeddingBackward(tokens, t[0], t[1])), Arg.of(4, C), Arg.of(9, C));
        checkStaged("addPositions", t -> none(() -> device.addPositions(t[0], t[1], 3, 1, null)), Arg.of(6, C), Arg.of(5, C));
        checkStaged("positionsBackward", t -> none(() -> device.positionsBackward(t[0], t[1], 3, new int[] {0, 2, 1, 1, 0, 2})), Arg.of(6, C), Arg.of(3, C));
    }

    @Test
    void optimizerKernelsStageExactly() {
        checkStaged("adamw", t -> none(() -> device.adamw(t[0], t[1], t[2], t[3], 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 0.3f)),
                Arg.of(R, C), Arg.of(R, C), Arg.of(R, C), Arg.positive(R, C));
        checkStaged("factoredSecondMoment", t -> none(() -> device.factoredSecondMoment(t[0], 1e-30f, 0.9f, t[1], t[2])),
                Arg.of(R, C), Arg.positive(R), Arg.positive(C));
        checkStaged("factoredScale", t -> none(() -> device.factoredScale(t[0], t[1], t[2], t[3])),
                Arg.of(R, C), Arg.positive(R), Arg.positive(C), Arg.of(R, C));
        checkStaged("secondMomentScale", t -> none(() -> device.secondMomentScale(t[0], 1e-30f, 0.9f, t[1], t[2])),
                Arg.of(R, C), Arg.positive(R, C), Arg.of(R, C));
    }

    /** A staged kernel on views writes back into the view's rows only. */
    @Test
    void stagedKernelOnViewsWritesOnlyTheirRows() {
        float[] xv = random(8 * C, 40), yv = random(8 * C, 41);
        try (Tensor x = tensor(Category.ACTIVATIONS, DType.BF16, xv, 8, C);
             Tensor y = tensor(Category.ACTIVATIONS, DType.BF16, yv, 8, C);
             Tensor x32 = tensor(Category.ACTIVATIONS, DType.F32, x.toArray(), 8, C);
             Tensor y32 = tensor(Category.ACTIVATIONS, DType.F32, y.toArray(), 8, C)) {
            device.gelu(x.rowRange(1, 4), y.rowRange(4, 7));
            device.gelu(x32.rowRange(1, 4), y32.rowRange(4, 7));
            assertBitsEqual(widenedRound(y32.toArray()), y.toArray(), "gelu between views");
            assertBitsEqual(x32.toArray(), x.toArray(), "input untouched");
        }
    }

    /** The float32 path is untouched by staging: no workspace at all when every tensor is float32. */
    @Test
    void float32KernelsTakeNoWorkspace() {
        try (Tensor x = tensor(Category.ACTIVATIONS, DType.F32, random(R * C, 50), R, C);
             Tensor y = device.empty(Category.ACTIVATIONS, R, C)) {
            device.memory().resetPeaks();
            device.gelu(x, y);
            assertEquals(0, device.memory().peak(Category.WORKSPACE));
            try (Tensor xb = tensor(Category.ACTIVATIONS, DType.BF16, random(R * C, 51), R, C)) {
                device.gelu(xb, y);
                assertNotEquals(0, device.memory().peak(Category.WORKSPACE), "a bfloat16 argument is widened into workspace");
            }
        }
    }
}
