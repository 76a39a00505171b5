package relay.stages.tensor.cpu;

/**
 * exp in float arithmetic only, so loops that use it stay free of calls and the JIT can vectorize them.
 * Range reduction x = k·ln2 + r with |r| ≤ ln2/2 (ln2 split in two parts so k·ln2 is exact enough),
 * then the degree-6 Taylor polynomial of e^r (truncation ≤ r⁷/7! ≈ 1.2e-7 relative) scaled by 2^k built
 * directly in the exponent bits. Inputs below −87 give 0 (rather than denormals), above 88 give +∞.
 */
final class FastExp {
    private FastExp() {}

    private static final float LOG2E = 1.44269504f;
    private static final float LN2_HI = 0.693145752f;
    private static final float LN2_LO = 1.42860677e-6f;
    /** Adding 1.5·2²³ rounds a float to an integer held in the low mantissa bits. */
    private static final float ROUNDER = 12582912f;

    static float exp(float x) {
        // Comparisons rather than Math.max/min: those carry NaN and −0 rules that keep the JIT from
        // compiling them to plain conditional moves.
        float xc = x < -87.3f ? -87.3f : x;
        xc = xc > 88.7f ? 88.7f : xc;
        float kf = xc * LOG2E + ROUNDER;
        int k = Float.floatToRawIntBits(kf) - 0x4B400000;
        kf -= ROUNDER;
        float r = xc - kf * LN2_HI - kf * LN2_LO;
        float p = 1f + r * (1f + r * (0.5f + r * (1f / 6 + r * (1f / 24 + r * (1f / 120 + r * (1f / 720))))));
        float scaled = p * Float.intBitsToFloat((k + 127) << 23);
        return x > 88.7f ? Float.POSITIVE_INFINITY : (x < -87.3f ? 0f : scaled);
    }
}
