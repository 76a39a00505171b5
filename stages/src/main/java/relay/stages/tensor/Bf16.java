package relay.stages.tensor;

/**
 * bfloat16 as the top 16 bits of a float32: widening is exact, narrowing rounds. Round to nearest (ties to even) is
 * what storing a computed value does; stochastic rounding — up with probability equal to the distance from the
 * value below — is what an update does, so that steps smaller than half a unit in the last place still move the
 * weight on average instead of vanishing.
 *
 * <p>The random bits come from a counter-based generator: a hash of (key, element index), so the rounding of every
 * element is fixed by the key alone, whatever the threads and whatever ran before — runs and resumes stay
 * bit-identical.
 */
public final class Bf16 {
    private Bf16() {}

    public static float widen(short bits) {
        return Float.intBitsToFloat(bits << 16);
    }

    /** Round to nearest, ties to even; NaN stays NaN (quiet), infinities stay infinite. */
    public static short round(float x) {
        int bits = Float.floatToRawIntBits(x);
        if ((bits & 0x7fffffff) > 0x7f800000) return (short) ((bits >>> 16) | 0x40);
        int lsb = (bits >>> 16) & 1;
        return (short) ((bits + 0x7fff + lsb) >>> 16);
    }

    /**
     * Rounds down or up to a neighbouring bfloat16, up with probability (x − down) / (up − down), using the low 16
     * bits of {@code random}; exact values, NaN and infinities are kept.
     */
    public static short stochastic(float x, int random) {
        int bits = Float.floatToRawIntBits(x);
        if ((bits & 0x7f800000) == 0x7f800000) return round(x);
        // Adding 16 random bits below the kept ones carries into them with exactly that probability (sign-magnitude).
        return (short) ((bits + (random & 0xffff)) >>> 16);
    }

    /** 32 random bits for element {@code index} under {@code key}: a splitmix64-style finalizer of both. */
    public static int randomBits(long key, long index) {
        long z = key * 0x9E3779B97F4A7C15L + index + 0x632BE59BD9B4E019L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return (int) (z ^ (z >>> 31));
    }

    /**
     * The key of one parameter's update in one run: its seed, the step, the update's place within the step (a
     * microbatch, when each applies its own) and the parameter's name — what {@link #randomBits} hashes with the index.
     */
    public static long updateKey(long seed, long step, int part, String parameter) {
        long z = randomBits(seed, step);
        z = z * 0x9E3779B97F4A7C15L + randomBits(part, parameter.hashCode());
        return z;
    }
}
