package relay.stages.tensor;

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
