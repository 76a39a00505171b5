package relay.stages.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import relay.stages.memory.Category;
import relay.stages.tensor.cpu.CpuDevice;

class CpuDeviceTest {
    CpuDevice device;

    @BeforeEach
    void open() {
        device = new CpuDevice("cpu-test", 2);
    }

    @AfterEach
    void close() {
        assertEquals(0, device.memory().currentTotal(), "test freed everything");
        device.close();
    }

    private static float[] random(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) r.nextDouble(-1, 1);
        return v;
    }

    /**
     * Every transpose combination, on a strided sub-matrix, against a plain double loop: small products in one call,
     * larger ones split over the device's two threads by rows (m ≥ n) or by columns.
     */
    @ParameterizedTest
    @CsvSource({"false,false,7,5,9", "false,true,7,5,9", "true,false,7,5,9", "true,true,7,5,9",
            "false,false,71,50,93", "false,true,71,50,93", "true,false,71,50,93", "true,true,71,50,93",
            "false,false,50,71,93", "false,true,50,71,93", "true,false,50,71,93", "true,true,50,71,93"})
    void gemmMatchesPlainLoop(boolean ta, boolean tb, int m, int n, int k) {
        int pad = 3;
        int aRows = ta ? k : m, aCols = ta ? m : k, bRows = tb ? n : k, bCols = tb ? k : n;
        int lda = aCols + pad, ldb = bCols + pad, ldc = n + pad;
        float[] av = random(aRows * lda, 1), bv = random(bRows * ldb, 2), cv = random(m * ldc, 3);
        try (Tensor a = device.allocate(Category.WORKSPACE, aRows, lda).copyFrom(av);
             Tensor b = device.allocate(Category.WORKSPACE, bRows, ldb).copyFrom(bv);
             Tensor c = device.allocate(Category.WORKSPACE, m, ldc).copyFrom(cv)) {
            device.gemm(ta, tb, m, n, k, 0.5f, new Mat(a, 1, lda), new Mat(b, 2, ldb), 2f, new Mat(c, 0, ldc));
            float[] got = c.toArray();
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int p = 0; p < k; p++) {
                        double x = ta ? av[1 + p * lda + i] : av[1 + i * lda + p];
                        double y = tb ? bv[2 + j * ldb + p] : bv[2 + p * ldb + j];
                        s += x * y;
                    }
                    assertEquals(0.5 * s + 2 * cv[i * ldc + j], got[i * ldc + j], 1e-5, "C[" + i + "," + j + "]");
                }
                for (int j = n; j < ldc; j++) assertEquals(cv[i * ldc + j], got[i * ldc + j], "padding untouched");
            }
        }
    }

    @Test
    void viewsShareMemoryAndOwnNothing() {
        try (Tensor t = device.allocate(Category.ACTIVATIONS, 4, 3)) {
            t.copyFrom(new float[] {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
            Tensor rows = t.rowRange(1, 3);
            assertArrayEquals(new float[] {3, 4, 5, 6, 7, 8}, rows.toArray());
            rows.copyFrom(new float[] {-1, -1, -1, -2, -2, -2});
            assertEquals(-2f, t.toArray()[8]);
            assertThrows(IllegalStateException.class, rows::close);
            assertThrows(IllegalArgumentException.class, () -> t.view(5, 2));
            assertEquals(48, device.memory().current(Category.ACTIVATIONS));
        }
    }

    /** Copies address elements, not bytes, when a view starts inside its allocation. */
    @Test
    void copyBetweenViewsAtOffsets() {
        try (Tensor big = device.allocate(Category.WORKSPACE, 4, 3); Tensor small = device.allocate(Category.WORKSPACE, 2, 3)) {
            small.copyFrom(new float[] {1, 2, 3, 4, 5, 6});
            device.copy(small, big.rowRange(1, 3));
            assertArrayEquals(new float[] {0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0}, big.toArray());
            device.copy(big.rowRange(2, 4), small);
            assertArrayEquals(new float[] {4, 5, 6, 0, 0, 0}, small.toArray());
        }
    }

    @Test
    void freeIsExplicitAndHappensOnce() {
        Tensor t = device.allocate(Category.GRADIENTS, 10);
        assertEquals(40, device.memory().current(Category.GRADIENTS));
        t.close();
        assertEquals(0, device.memory().current(Category.GRADIENTS));
        assertThrows(IllegalStateException.class, t::close);
        assertThrows(IllegalStateException.class, t::toArray, "use after free fails loudly");
    }

    @Test
    void reusedMemoryIsZeroedWhenAllocatedButNotWhenEmpty() {
        Tensor dirty = device.allocate(Category.WORKSPACE, 64).copyFrom(random(64, 4));
        dirty.close();
        try (Tensor zeroed = device.allocate(Category.WORKSPACE, 64)) {
            for (float v : zeroed.toArray()) assertEquals(0f, v);
        }
        assertTrue(device.freeBytes() >= 256, "freed blocks are kept for reuse");
    }

    @Test
    void tokensOutsideTheVocabularyAreRejectedWithTheirPosition() {
        try (Tensor table = device.allocate(Category.PARAMETERS, 5, 2); Tensor out = device.empty(Category.ACTIVATIONS, 2, 2)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> device.embedding(new int[] {1, 7}, table, out));
            assertTrue(e.getMessage().contains("token 7 at position 1"), e.getMessage());
        }
    }

    @Test
    void crossEntropyOfUniformLogitsIsLogVocab() {
        try (Tensor z = device.allocate(Category.WORKSPACE, 3, 10)) {
            double loss = device.crossEntropy(z, new int[] {0, 4, 9}, 0, 1f);
            assertEquals(3 * Math.log(10), loss, 1e-6);
            float[] g = z.toArray();
            assertEquals(0.1f - 1f, g[0], 1e-6);
            assertEquals(0.1f, g[1], 1e-6);
        }
    }
}
