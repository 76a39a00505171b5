package relay.actors.plan;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import relay.actors.PipelineConfig;
import relay.actors.Placement;
import relay.optimizers.Method;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;
import relay.stages.model.Precision;

/**
 * A plan in bfloat16 holds its weights at 2 bytes each: every device's parameters are the parameters of its
 * stages, counted here from the config's sizes alone, times 2 — half a float32 plan's — while gradients and
 * optimizer state stay float32. And at 2 bytes a weight LLaMA-65B trains with LOMO on eight 24 GiB devices, as
 * LOMO's authors trained it on eight RTX 3090s in 16-bit, where at 4 bytes its weights alone (243 GiB) cannot.
 */
@Timeout(300)
class PlanPrecisionTest {
    private static Planner planner;

    @BeforeAll
    static void open() {
        planner = new Planner();
    }

    @AfterAll
    static void close() {
        planner.close();
    }

    /** A plain LLaMA block's weights from its sizes: q and o (hidden × heads·headDim), k and v (hidden × kvHeads·headDim), the MLP's three matrices and two norms. */
    private static long llamaBlock(ModelConfig c) {
        long h = c.hidden(), q = (long) c.heads() * c.headDim(), kv = (long) c.kvHeads() * c.headDim();
        return 2 * h * q + 2 * h * kv + 3 * h * c.intermediate() + 2 * h;
    }

    /** Each stage's weights, untied: the embedding's table; each block; the final norm and the output matrix. */
    private static long stage(ModelConfig c, int s) {
        long table = (long) c.vocabSize() * c.hidden();
        if (s == 0) return table;
        if (s == c.layers() + 1) return c.hidden() + table;
        return llamaBlock(c);
    }

    /** Each device's weights under a placement, from the config's sizes. */
    private static long[] deviceWeights(ModelConfig c, Placement p) {
        long[] out = new long[p.devices()];
        for (int s = 0; s < c.layers() + 2; s++) out[p.deviceOfStage()[s]] += stage(c, s);
        return out;
    }

    private static PipelineConfig lomo(Precision precision) {
        return PipelineConfig.defaults(Method.named("lomo"), 1e-3f).withPrecision(precision);
    }

    @Test
    void bf16ParametersAreTwoBytesAWeightHalfOfF32AndTheRestIsUnchanged() {
        ModelConfig cfg = ModelConfig.named("llama-tiny");
        assertFalse(cfg.tiedEmbeddings());
        Placement placement = new Placement(3, new int[] {0, 0, 1, 1, 2, 2});
        List<Map<Category, Long>> f32 = planner.memory(cfg, placement, lomo(Precision.F32), 4, 16, 2);
        List<Map<Category, Long>> bf16 = planner.memory(cfg, placement, lomo(Precision.BF16), 4, 16, 2);
        long[] weights = deviceWeights(cfg, placement);
        long all = 0;
        for (int d = 0; d < placement.devices(); d++) {
            assertEquals(2 * weights[d], bf16.get(d).get(Category.PARAMETERS), "device " + d + " in bf16");
            assertEquals(4 * weights[d], f32.get(d).get(Category.PARAMETERS), "device " + d + " in f32");
            assertEquals(f32.get(d).get(Category.PARAMETERS), 2 * bf16.get(d).get(Category.PARAMETERS), "device " + d);
            // Gradients and optimizer state are float32 in either.
            assertEquals(f32.get(d).get(Category.GRADIENTS), bf16.get(d).get(Category.GRADIENTS), "device " + d + " gradients");
            assertEquals(f32.get(d).get(Category.OPTIMIZER_STATE), bf16.get(d).get(Category.OPTIMIZER_STATE), "device " + d + " state");
            all += weights[d];
        }
        // 512·128 (embedding) + 4 blocks of 128·128·2 + 128·64·2 + 3·128·352 + 2·128 + 128 + 512·128 (head).
        assertEquals(65_536 + 4 * 184_576 + 128 + 65_536, all);
        assertEquals(2 * all, Planner.parameterBytes(cfg, Precision.BF16));
    }

    @Test
    void activationsCrossDevicesAtTheirDtypesBytes() {
        ModelConfig cfg = ModelConfig.named("llama-tiny");
        // A bus of 1 MB/s and stages that cost nothing: the step is the two messages, the activation forward and its gradient back.
        DeviceSpec spec = DeviceSpec.parse("2x1GiB", DeviceSpec.DEFAULT_BANDWIDTH, 1e6, 1e6, 0);
        Placement placement = new Placement(2, new int[] {0, 0, 0, 1, 1, 1});
        double[] zero = new double[cfg.layers() + 2];
        StageCosts free = new StageCosts(zero, zero, zero);
        int batch = 2, seq = 16;
        for (Precision precision : List.of(Precision.F32, new Precision(Precision.F32.weights(), Precision.BF16.activations()))) {
            double bytes = (double) batch * seq * cfg.hidden() * (precision.activations() == Precision.BF16.activations() ? 2 : 4);
            double step = Planner.time(cfg, spec, free, placement, lomo(precision), batch, seq, 1).stepTime();
            assertEquals(2 * bytes / 1e6, step, 1e-12, precision.toString());
        }
    }

    @Test
    void llama65bInBf16FitsEightDevicesOf24GiBAndInF32ItsWeightsAloneDoNot() {
        ModelConfig cfg = ModelConfig.named("llama-65b");
        DeviceSpec spec = DeviceSpec.parse("8x24GiB", DeviceSpec.DEFAULT_BANDWIDTH, DeviceSpec.DEFAULT_BUS, DeviceSpec.DEFAULT_LINK, 0);
        long weights = 0;
        for (int s = 0; s < cfg.layers() + 2; s++) weights += stage(cfg, s);
        assertEquals(65_285_660_672L, weights);
        assertTrue(4 * weights > spec.devices() * spec.memoryBytes(), "float32 weights exceed the 8 devices' 192 GiB");
        assertTrue(2 * weights < spec.devices() * spec.memoryBytes(), "bfloat16 weights leave room");

        Planner.Search found = planner.fit(cfg, spec, lomo(Precision.BF16), 4, 256);
        assertTrue(found.fits(), found.why());
        Plan p = found.best();
        long[] perDevice = deviceWeights(cfg, p.placement());
        for (int d = 0; d < spec.devices(); d++) {
            assertEquals(2 * perDevice[d], p.memory().get(d).get(Category.PARAMETERS), "device " + d);
            assertTrue(p.need(d) <= 24L << 30, "device " + d + " needs " + Plan.size(p.need(d)));
        }
        assertFalse(planner.fit(cfg, spec, lomo(Precision.F32), 4, 256).fits());
    }
}
