package relay.stages.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import relay.stages.memory.Category;
import relay.stages.tensor.cpu.CpuDevice;

/**
 * Devices of one process each compute with their own thread count: a matrix product runs on the calling thread and
 * the device's own helpers, and BLAS starts no threads of its own (its count is process-wide, so a device that set it
 * would change every other device's).
 */
class DeviceThreadsTest {
    private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();

    @Test
    void twoDevicesInOneProcessEachRunAtTheirOwnCount() throws Exception {
        try (CpuDevice wide = new CpuDevice("wide", 3); CpuDevice narrow = new CpuDevice("narrow", 1)) {
            // narrow was made after wide: with a process-wide BLAS count it would have brought wide down to one thread.
            Map<String, Long> busy = cpuNanosDuring(() -> product(wide));
            assertEquals(2, helpers(busy, "wide"), "wide's two helpers computed beside the caller: " + busy);
            assertEquals(0, helpers(busy, "narrow"), busy.toString());
            assertEquals(1, org.bytedeco.openblas.presets.openblas_nolapack.blas_get_num_threads(), "BLAS runs one thread per call");

            busy = cpuNanosDuring(() -> product(narrow));
            assertEquals(0, helpers(busy, "narrow"), "a one-thread device computes on its caller only: " + busy);
            assertEquals(0, helpers(busy, "wide"), busy.toString());
        }
    }

    /** A product cut over more threads computes every element exactly as one call does, whatever its transposes and shape. */
    @Test
    void aProductIsBitIdenticalOnAnyThreadCount() {
        // The last is cut into 16 tiles of 256 columns (more than 16 of 128 would be).
        int[][] shapes = {{1000, 200, 300}, {130, 777, 65}, {257, 255, 129}, {40, 2500, 33}};
        for (int[] s : shapes) {
            for (int t = 0; t < 4; t++) {
                boolean ta = (t & 1) != 0, tb = (t & 2) != 0;
                float[] one = productOn(1, ta, tb, s[0], s[1], s[2]);
                for (int threads : new int[] {2, 3}) {
                    assertArrayEquals(one, productOn(threads, ta, tb, s[0], s[1], s[2]),
                            threads + " threads, " + s[0] + "x" + s[1] + "x" + s[2] + (ta ? " Aᵀ" : "") + (tb ? " Bᵀ" : ""));
                }
            }
        }
    }

    /** Training steps of whole models (every kernel, not only products) end bit-identical on one thread and on three. */
    @Test
    void trainingStepsAreBitIdenticalOnAnyThreadCount() {
        for (String model : new String[] {"gpt2-tiny", "llama-tiny"}) {
            java.util.Map<String, java.util.List<Float>> one = trainedOn(1, model), three = trainedOn(3, model);
            assertEquals(one.keySet(), three.keySet());
            one.forEach((name, v) -> assertTrue(v.equals(three.get(name)), model + ": " + name + " differs"));
        }
    }

    private static java.util.Map<String, java.util.List<Float>> trainedOn(int threads, String name) {
        relay.stages.model.ModelConfig cfg = relay.stages.model.ModelConfig.named(name);
        try (CpuDevice d = new CpuDevice("steps", threads); relay.stages.model.Model m = relay.stages.model.Model.initialize(cfg, d, 5)) {
            relay.stages.train.ReferenceTrainer trainer = relay.stages.train.ReferenceTrainer.sgd(m, 0.05f);
            relay.stages.train.SyntheticData data = new relay.stages.train.SyntheticData(cfg.vocabSize(), 4, 64, 0.1, 9);
            for (int i = 0; i < 2; i++) trainer.step(java.util.List.of(data.next(), data.next()));
            java.util.Map<String, java.util.List<Float>> out = new java.util.TreeMap<>();
            for (var p : m.parameters()) {
                float[] v = p.value().toArray();
                java.util.List<Float> l = new java.util.ArrayList<>(v.length);
                for (float x : v) l.add(x);
                out.put(p.name(), l);
            }
            return out;
        }
    }

    private static float[] productOn(int threads, boolean ta, boolean tb, int m, int n, int k) {
        SplittableRandom r = new SplittableRandom(m * 31L + n * 7L + k);
        float[] a = new float[m * k], b = new float[k * n], c = new float[m * n];
        for (int i = 0; i < a.length; i++) a[i] = (float) r.nextDouble(-1, 1);
        for (int i = 0; i < b.length; i++) b[i] = (float) r.nextDouble(-1, 1);
        for (int i = 0; i < c.length; i++) c[i] = (float) r.nextDouble(-1, 1);
        try (CpuDevice d = new CpuDevice("cut", threads);
             Tensor ta_ = d.empty(Category.WORKSPACE, ta ? k : m, ta ? m : k).copyFrom(a);
             Tensor tb_ = d.empty(Category.WORKSPACE, tb ? n : k, tb ? k : n).copyFrom(b);
             Tensor tc = d.empty(Category.WORKSPACE, m, n).copyFrom(c)) {
            d.gemm(ta, tb, m, n, k, 0.75f, Mat.of(ta_), Mat.of(tb_), 0.5f, Mat.of(tc));
            return tc.toArray();
        }
    }

    /** Threads named as the device's helpers that gained CPU time. */
    private static long helpers(Map<String, Long> busy, String device) {
        return busy.entrySet().stream().filter(e -> e.getKey().startsWith("relay-" + device + "-") && e.getValue() > 0).count();
    }

    /** CPU time each live thread spent while {@code work} ran on a thread of its own. */
    private static Map<String, Long> cpuNanosDuring(Runnable work) throws InterruptedException {
        Map<Long, Long> before = new HashMap<>();
        for (long id : THREADS.getAllThreadIds()) before.put(id, THREADS.getThreadCpuTime(id));
        Thread caller = new Thread(work, "caller");
        caller.start();
        caller.join();
        Map<String, Long> gained = new HashMap<>();
        for (long id : THREADS.getAllThreadIds()) {
            var info = THREADS.getThreadInfo(id);
            if (info == null) continue;
            long now = THREADS.getThreadCpuTime(id);
            gained.merge(info.getThreadName(), now - before.getOrDefault(id, 0L), Long::sum);
        }
        return gained;
    }

    /** Enough products that every helper takes a share many times over. */
    private static void product(Device d) {
        int n = 384;
        SplittableRandom r = new SplittableRandom(3);
        float[] v = new float[n * n];
        for (int i = 0; i < v.length; i++) v[i] = (float) r.nextDouble(-1, 1);
        try (Tensor a = d.empty(Category.WORKSPACE, n, n).copyFrom(v); Tensor b = d.empty(Category.WORKSPACE, n, n).copyFrom(v);
             Tensor c = d.empty(Category.WORKSPACE, n, n)) {
            for (int i = 0; i < 20; i++) d.gemm(false, i % 2 == 0, n, n, n, 1f, Mat.of(a), Mat.of(b), 0f, Mat.of(c));
            float[] out = c.toArray();
            assertTrue(Float.isFinite(out[0]) && out[0] != 0f, "the product was computed");
        }
    }
}
