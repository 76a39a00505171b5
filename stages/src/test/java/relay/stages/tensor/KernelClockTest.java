package relay.stages.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Method;
import java.util.Set;
import org.junit.jupiter.api.Test;
import relay.stages.memory.Category;
import relay.stages.tensor.cpu.CpuDevice;

/** The kernel clock: every kernel has a family, the timed view computes what the device computes, and counts it. */
class KernelClockTest {
    /** The device's methods that are not kernels: their time is the step's "other". */
    private static final Set<String> NOT_KERNELS = Set.of("name", "memory", "threads", "allocate", "empty", "free", "upload",
            "download", "view", "adopt", "read", "write", "close");

    @Test
    void everyDeviceMethodIsAKernelOfAFamilyOrNamedAsNone() {
        for (Method m : Device.class.getMethods()) {
            if (m.isDefault() || java.lang.reflect.Modifier.isStatic(m.getModifiers())) continue;
            assertTrue(KernelClock.familyOf(m.getName()) != null ^ NOT_KERNELS.contains(m.getName()),
                    "Device." + m.getName() + " must be a kernel with a family or listed as none");
        }
    }

    private static float[] values(int n, int seed) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) Math.sin(seed * 31 + i);
        return v;
    }

    @Test
    void theTimedViewComputesTheSameAndCountsEachFamily() {
        KernelClock clock = new KernelClock();
        try (CpuDevice timedCpu = new CpuDevice("timed", 1); CpuDevice plain = new CpuDevice("plain", 1)) {
            Device timed = timedCpu.timedBy(clock);
            float[][] out = new float[2][];
            Device[] devices = {timed, plain};
            for (int k = 0; k < 2; k++) {
                Device d = devices[k];
                try (Tensor a = d.allocate(Category.WORKSPACE, 8, 16).copyFrom(values(128, 1));
                     Tensor b = d.allocate(Category.WORKSPACE, 16, 4).copyFrom(values(64, 2));
                     Tensor c = d.allocate(Category.WORKSPACE, 8, 4);
                     Tensor g = d.allocate(Category.WORKSPACE, 4).copyFrom(values(4, 3));
                     Tensor y = d.allocate(Category.WORKSPACE, 8, 4);
                     Tensor r = d.allocate(Category.WORKSPACE, 8)) {
                    assertSame(d, a.device(), "a tensor names the device that made it");
                    d.gemm(false, false, 8, 4, 16, 1f, Mat.of(a), Mat.of(b), 0f, Mat.of(c));
                    d.rmsNorm(c, g, 1e-5f, y, r);
                    d.axpy(0.5f, c, y);
                    out[k] = y.toArray();
                }
            }
            assertArrayEquals(out[1], out[0]);
            assertEquals(1, clock.calls().get(KernelClock.Family.SGEMM));
            assertEquals(1, clock.calls().get(KernelClock.Family.NORMS));
            assertEquals(1, clock.calls().get(KernelClock.Family.UPDATE));
            assertEquals(0, clock.calls().get(KernelClock.Family.LOSS));
            assertTrue(clock.nanos().get(KernelClock.Family.SGEMM) > 0);
            clock.reset();
            assertEquals(0, clock.nanos().get(KernelClock.Family.SGEMM));
        }
    }

    @Test
    void aKernelsOwnErrorComesThroughUnwrapped() {
        try (CpuDevice cpu = new CpuDevice("timed", 1)) {
            Device d = cpu.timedBy(new KernelClock());
            try (Tensor a = d.allocate(Category.WORKSPACE, 3); Tensor b = d.allocate(Category.WORKSPACE, 4)) {
                assertThrows(IllegalArgumentException.class, () -> d.gelu(a, b));
            }
        }
    }

    @Test
    void aDeviceHoldingTensorsCannotBeTimedAfterwards() {
        try (CpuDevice cpu = new CpuDevice("busy", 1); Tensor t = cpu.allocate(Category.WORKSPACE, 2)) {
            assertThrows(IllegalStateException.class, () -> cpu.timedBy(new KernelClock()));
        }
    }
}
