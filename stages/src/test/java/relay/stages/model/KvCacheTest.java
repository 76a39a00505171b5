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
    @ValueSource(strings = {"llama-tiny", "gpt2-tiny", "mistral-window", "llama-dynamic"})
    void cachedDecodingEqualsFullRecompute(String name) {
        ModelConfig tiny = ModelConfig.named("llama-tiny");
        ModelConfig.Options plain = ModelConfig.Options.plain(Family.LLAMA);
        ModelConfig cfg = switch (name) {
            // A window of 3 over 8 tokens: the cache holds keys the window no longer reaches.
            case "mistral-window" -> withOptions(tiny, tiny.maxPositions(), plain.withModelType("mistral").withWindow(3, 0));
            // Up to max_position_embeddings dynamic scaling is the plain rotary embedding, step by step too.
            case "llama-dynamic" -> withOptions(tiny, 8, plain.withRope(ModelConfig.Rope.dynamic(2), ModelConfig.RopeSpelling.ROPE_SCALING_TYPE));
            default -> ModelConfig.named(name);
        };
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

    /**
     * Past max_position_embeddings (4 here) dynamic scaling turns by the frequencies of the length reached: a prompt
     * of L tokens through the cache gives the full forward's logits at every L, and they are the plain model's
     * only up to 4 tokens. (A cached step past 4 keeps earlier keys and values as they were computed, as transformers'
     * generate does, so it cannot equal a full recompute, whose earlier tokens see the new frequencies too.)
     */
    @org.junit.jupiter.api.Test
    void dynamicScalingFollowsTheLengthSeen() {
        ModelConfig tiny = ModelConfig.named("llama-tiny");
        ModelConfig plain = withOptions(tiny, 4, ModelConfig.Options.plain(Family.LLAMA));
        ModelConfig dynamic = withOptions(tiny, 4, plain.options().withRope(ModelConfig.Rope.dynamic(2), ModelConfig.RopeSpelling.ROPE_PARAMETERS));
        int[] ids = {5, 17, 42, 8, 99, 3, 250, 61};
        try (CpuDevice d = new CpuDevice("cpu-kv", 1); Model a = Model.initialize(plain, d, 3); Model b = Model.initialize(dynamic, d, 3)) {
            for (Model m : new Model[] {a, b}) {
                for (Parameter p : m.parameters()) {
                    float[] v = p.value().toArray();
                    for (int i = 0; i < v.length; i++) v[i] = p.decay() ? v[i] * 10 : 1f;
                    p.value().copyFrom(v);
                }
            }
            for (int len = 2; len <= ids.length; len++) {
                int[] prompt = Arrays.copyOf(ids, len);
                float[] full = b.lastLogits(prompt);
                try (KvCache cache = new KvCache(b, 16)) {
                    assertClose(full, b.nextLogits(prompt, cache), "prompt of " + len);
                }
                float[] unscaled = a.lastLogits(prompt);
                double diff = 0;
                for (int i = 0; i < full.length; i++) diff = Math.max(diff, Math.abs(full[i] - unscaled[i]));
                if (len <= 4) assertEquals(0, diff, 1e-4, "unscaled up to max_position_embeddings, at " + len);
                else assertTrue(diff > 1e-2, "scaled past max_position_embeddings, at " + len + ": " + diff);
            }
        }
    }

    static ModelConfig withOptions(ModelConfig c, int maxPositions, ModelConfig.Options options) {
        return new ModelConfig(c.family(), c.vocabSize(), c.hidden(), c.layers(), c.heads(), c.kvHeads(), c.headDim(), c.intermediate(),
                maxPositions, c.normEps(), c.ropeTheta(), c.tiedEmbeddings(), options);
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
