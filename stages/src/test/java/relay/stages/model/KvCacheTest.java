package relay.stages.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.tensor.cpu.CpuDevice;

/** Decoding with a cache gives the logits a full forward over the whole sequence gives. */
class KvCacheTest {

    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny", "gpt2-tiny"})
    void cachedDecodingEqualsFullRecompute(String name) {
        ModelConfig cfg = ModelConfig.named(name);
        try (CpuDevice d = new CpuDevice("cpu-kv", 1); Model m = Model.initialize(cfg, d, 3)) {
            // Larger weights than the initialization's, so attention is far from uniform.
            SplittableRandom r = new SplittableRandom(1);
            for (Parameter p : m.parameters()) {
                float[] v = p.value().toArray();
                for (int i = 0; i < v.length; i++) v[i] = p.decay() ? v[i] * 10 : (float) (1 + 0.2 * r.nextGaussian());
                p.value().copyFrom(v);
            }
            int[] ids = {5, 17, 42, 8, 99, 3, 250, 61};
            try (KvCache cache = new KvCache(m, 16)) {
                float[] got = m.nextLogits(Arrays.copyOf(ids, 5), cache);
                assertClose(m.lastLogits(Arrays.copyOf(ids, 5)), got, name + " prefill");
                for (int t = 5; t < ids.length; t++) {
                    got = m.nextLogits(new int[] {ids[t]}, cache);
                    assertClose(m.lastLogits(Arrays.copyOf(ids, t + 1)), got, name + " token " + t);
                }
                assertEquals(ids.length, cache.length());
            }
            assertEquals(0, d.memory().current(Category.WORKSPACE) + d.memory().current(Category.ACTIVATIONS), "nothing left behind");
        }
    }

    static void assertClose(float[] want, float[] got, String what) {
        double maxDiff = 0, scale = 0;
        for (int i = 0; i < want.length; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(want[i] - got[i]));
            scale = Math.max(scale, Math.abs(want[i]));
        }
        assertTrue(maxDiff <= 1e-5 * scale, what + ": " + maxDiff + " of " + scale);
    }
}
