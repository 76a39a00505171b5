package relay.stages.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import relay.stages.check.Reference64;

/**
 * transformers' rotary frequencies worked out by hand for head_dim 8 and rope_theta 10000, where the plain
 * frequencies 10000^(−2i/8) are 1, 0.1, 0.01 and 0.001 (wavelengths 2π/θ: 6.28, 62.8, 628 and 6283 positions).
 */
class RotaryEmbeddingTest {
    static final double THETA = 10000;

    static RotaryEmbedding rotary(int maxPositions, ModelConfig.Rope rope) {
        return new RotaryEmbedding(8, THETA, maxPositions, rope);
    }

    @Test
    void plainAndLinear() {
        assertArrayEquals(new double[] {1, 0.1, 0.01, 0.001}, rotary(16, ModelConfig.Rope.NONE).inverseFrequencies(16), 1e-15);
        assertArrayEquals(new double[] {1 / 2.5, 0.1 / 2.5, 0.01 / 2.5, 0.001 / 2.5},
                rotary(16, ModelConfig.Rope.linear(2.5)).inverseFrequencies(16), 1e-15);
        assertEquals(1.0, rotary(16, ModelConfig.Rope.linear(2.5)).scale());
    }

    /**
     * Dynamic NTK, factor 2, max_position_embeddings 4: up to 4 positions the plain frequencies; at 6 the base is
     * 10000·(2·6/4 − 1)^(8/6) = 10000·2^(4/3), so θ_i = 10000^(−i/4)·2^(−i/3): 1, 0.1·2^(−1/3) = 0.0793700526,
     * 0.01·2^(−2/3) = 0.0062996052, 0.001/2.
     */
    @Test
    void dynamicRaisesTheBasePastMaxPositions() {
        RotaryEmbedding r = rotary(4, ModelConfig.Rope.dynamic(2));
        assertTrue(r.dependsOnLength());
        assertArrayEquals(new double[] {1, 0.1, 0.01, 0.001}, r.inverseFrequencies(4), 1e-15);
        assertArrayEquals(new double[] {1, 0.0793700526, 0.0062996052, 0.0005}, r.inverseFrequencies(6), 1e-10);
    }

    /**
     * llama3 with factor 8, low_freq_factor 1, high_freq_factor 4, original context 64: wavelengths beyond 64/1
     * (628, 6283) are divided by 8, under 64/4 = 16 (6.28) kept, and 62.8 is between: s = (64/62.83 − 1)/(4 − 1)
     * = 0.0061972, θ = (1 − s)·0.1/8 + s·0.1 = 0.0130423.
     */
    @Test
    void llama3BlendsTheMiddleBand() {
        double[] got = rotary(128, ModelConfig.Rope.llama3(8, 1, 4, 64)).inverseFrequencies(128);
        assertArrayEquals(new double[] {1, 0.0130423, 0.01 / 8, 0.001 / 8}, got, 1e-7);
    }

    /**
     * yarn, factor 4, original context 2048: the correction dimensions are 8·ln(2048/(2π·32))/(2 ln 10000) = 1.008
     * (beta_fast 32) and 8·ln(2048/2π)/(2 ln 10000) = 2.513 (beta_slow 1), truncated to 1 and 3: the ramp
     * (i − 1)/2 keeps θ_0 and θ_1, halves θ_2 between kept and /4 (0.5·0.01/4 + 0.5·0.01 = 0.00625) and divides θ_3 by 4.
     * Untruncated, θ_2's ramp is (2 − 1.008)/(2.513 − 1.008) = 0.65907: 0.65907·0.0025 + 0.34093·0.01 = 0.0050570.
     */
    @Test
    void yarnRampsBetweenTheCorrectionDimensions() {
        assertArrayEquals(new double[] {1, 0.1, 0.00625, 0.00025}, rotary(512, ModelConfig.Rope.yarn(4, 2048)).inverseFrequencies(512),
                1e-15);
        ModelConfig.Rope untruncated = new ModelConfig.Rope("yarn", 4, 0, 0, 2048, 0, 0, 0, 0, 0, false);
        assertArrayEquals(new double[] {1, 0.1, 0.0050570, 0.00025}, rotary(512, untruncated).inverseFrequencies(512), 1e-7);
        // Without original_max_position_embeddings the original context is max_position_embeddings.
        assertArrayEquals(rotary(2048, ModelConfig.Rope.yarn(4, 0)).inverseFrequencies(7),
                rotary(512, ModelConfig.Rope.yarn(4, 2048)).inverseFrequencies(7), 0);
    }

    /** 0.1·ln 4 + 1 = 1.1386294; given, it is used as is; mscale 0.707 over mscale_all_dim 1 at factor 40: 1.2608 / 1.3689. */
    @Test
    void yarnAttentionFactor() {
        assertEquals(1.1386294361, rotary(16, ModelConfig.Rope.yarn(4, 0)).scale(), 1e-10);
        assertEquals(1.25, rotary(16, new ModelConfig.Rope("yarn", 4, 0, 0, 0, 1.25, 0, 0, 0, 0, true)).scale());
        assertEquals(0.9210423553, rotary(16, new ModelConfig.Rope("yarn", 40, 0, 0, 0, 0, 0, 0, 0.707, 1, true)).scale(), 1e-10);
        // mscale alone is not enough: transformers then uses the factor only.
        assertEquals(1.1386294361, rotary(16, new ModelConfig.Rope("yarn", 4, 0, 0, 0, 0, 0, 0, 0.707, 0, true)).scale(), 1e-10);
        assertFalse(rotary(16, ModelConfig.Rope.yarn(4, 0)).dependsOnLength());
    }

    /** The float64 reference, written separately from the formulas, agrees for every type, length and option. */
    @Test
    void agreesWithTheFloat64Reference() {
        ModelConfig.Rope[] ropes = {ModelConfig.Rope.NONE, ModelConfig.Rope.linear(3), ModelConfig.Rope.dynamic(2.5),
                ModelConfig.Rope.llama3(8, 1, 4, 8192), ModelConfig.Rope.llama3(32, 1, 4, 256), ModelConfig.Rope.yarn(4, 32768),
                new ModelConfig.Rope("yarn", 16, 0, 0, 4096, 0, 24, 2, 0, 0, false)};
        for (ModelConfig.Rope rope : ropes) {
            for (int headDim : new int[] {8, 64, 128}) {
                for (int length : new int[] {5, 4096, 20000}) {
                    double[] want = Reference64.ropeFrequencies(rope, headDim, 500000, 4096, length);
                    double[] got = new RotaryEmbedding(headDim, 500000, 4096, rope).inverseFrequencies(length);
                    for (int i = 0; i < want.length; i++) {
                        assertEquals(want[i], got[i], 1e-12 * want[i], rope + " head_dim " + headDim + " length " + length + " i " + i);
                    }
                }
            }
            assertEquals(Reference64.ropeScale(rope), new RotaryEmbedding(64, 500000, 4096, rope).scale(), 1e-15, rope.toString());
        }
    }
}
