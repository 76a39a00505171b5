package relay.stages.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;
import relay.stages.memory.Category;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.tensor.sim.Roofline;
import relay.stages.tensor.sim.SimDevice;
import relay.stages.train.Batch;
import relay.stages.train.ReferenceTrainer;
import relay.stages.train.SyntheticData;

/** The simulated device allocates what a real one does for the same work, and charges its roofline's time. */
class SimDeviceTest {
    private static final Roofline ROOF = new Roofline(1e12, 1e11, 5e-6);

    /** Per-category peaks and what stays held after training steps of the plain loop on a device. */
    private static List<Map<Category, Long>> train(Device d, ModelConfig cfg) {
        SyntheticData data = new SyntheticData(cfg.vocabSize(), 2, 16, 0.1, 3);
        try (Model m = Model.initialize(cfg, d, 1)) {
            ReferenceTrainer t = ReferenceTrainer.sgd(m, 1e-3f);
            List<Batch> step = List.of(data.next(), data.next());
            t.step(step);
            t.step(step);
            List<Map<Category, Long>> out = new ArrayList<>();
            out.add(d.memory().peaks());
            out.add(d.memory().currents());
            return out;
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2-tiny", "llama-tiny"})
    void aTrainingStepAllocatesExactlyWhatItDoesOnTheCpu(String name) {
        ModelConfig cfg = ModelConfig.named(name);
        List<Map<Category, Long>> cpu, sim;
        try (CpuDevice d = new CpuDevice("cpu-sim-check", 1)) {
            cpu = train(d, cfg);
        }
        SimDevice s = new SimDevice("sim-check", ROOF, 0);
        sim = train(s, cfg);
        assertEquals(cpu, sim);
        assertEquals(0, s.memory().currentTotal(), "everything freed");
        assertTrue(cpu.get(0).get(Category.ACTIVATIONS) > 0, "the step held activations");
    }

    @Test
    void aMatrixProductTakesItsRooflineTime() {
        SimDevice s = new SimDevice("sim-gemm", ROOF, 0);
        Tensor a = s.empty(Category.WORKSPACE, 256, 512), b = s.empty(Category.WORKSPACE, 512, 1024), c = s.empty(Category.WORKSPACE, 256, 1024);
        s.gemm(false, false, 256, 1024, 512, 1f, Mat.of(a), Mat.of(b), 0f, Mat.of(c));
        // 2·256·1024·512 = 268,435,456 flops at 1e12/s: 268.4 µs, more than its 1.57 MB at 1e11 B/s take (15.7 µs).
        assertEquals(Math.round((2.0 * 256 * 1024 * 512 / 1e12 + 5e-6) * 1e9), s.modelledNanos());
        s.add(c, c, c);
        // Memory bound: three passes over 262,144 floats, 3.1 MB at 1e11 B/s.
        assertEquals(Math.round((3.0 * 262_144 * 4 / 1e11 + 5e-6) * 1e9), s.modelledNanos() - Math.round((2.0 * 256 * 1024 * 512 / 1e12 + 5e-6) * 1e9));
        assertEquals(2, s.kernels());
        for (Tensor t : new Tensor[] {a, b, c}) t.close();
        assertEquals(0, s.memory().currentTotal());
    }

    @Test
    void paceMakesKernelsTakeThatFractionOfTheirModelledTime() {
        SimDevice s = new SimDevice("sim-paced", new Roofline(1e9, 1e12, 0), 0.5);
        try (Tensor a = s.empty(Category.WORKSPACE, 100, 100)) {
            long t0 = System.nanoTime();
            for (int i = 0; i < 20; i++) s.gemm(false, false, 100, 100, 100, 1f, Mat.of(a), Mat.of(a), 0f, Mat.of(a));
            double waited = (System.nanoTime() - t0) / 1e9;
            // 20 products of 2e6 flops at 1e9/s model 40 ms; half of it is waited (a sleep may overshoot on a busy machine, never undershoot).
            assertEquals(0.040, s.modelledNanos() / 1e9, 1e-9);
            assertTrue(waited >= 0.019 && waited < 0.5, "waited " + waited + " s");
        }
    }
}
