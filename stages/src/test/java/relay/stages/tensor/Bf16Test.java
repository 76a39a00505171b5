package relay.stages.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * bfloat16 rounding checked against an oracle that works on values, not on bit tricks: the two bfloat16 neighbours of
 * x are found by truncation, their distances to x are measured in double (exact: they share x's binade or the next),
 * and the nearer wins, ties going to the one whose last kept bit is 0.
 */
class Bf16Test {

    /** The oracle: round to nearest, ties to even, by comparing distances. NaN is reported as a NaN of x's sign. */
    static short nearest(float x) {
        int bits = Float.floatToRawIntBits(x);
        int sign = bits & 0x80000000, mag = bits & 0x7fffffff;
        if (mag > 0x7f800000) return (short) ((sign >>> 16) | 0x7fc0);
        if (mag == 0x7f800000) return (short) ((sign | mag) >>> 16);
        int downMag = mag & 0xffff0000;
        if (downMag == mag) return (short) ((sign | mag) >>> 16);
        int upMag = downMag + 0x10000;
        double v = Math.abs((double) x);
        double down = Float.intBitsToFloat(downMag);
        // Above the largest finite value the next step is where 2^128 would be: IEEE rounds there to infinity.
        double up = upMag == 0x7f800000 ? 0x1p128 : Float.intBitsToFloat(upMag);
        double toDown = v - down, toUp = up - v;
        int chosen;
        if (toDown < toUp) chosen = downMag;
        else if (toUp < toDown) chosen = upMag;
        else chosen = ((downMag >>> 16) & 1) == 0 ? downMag : upMag;
        return (short) ((sign | chosen) >>> 16);
    }

    private static boolean isNaN(short b) {
        return (b & 0x7f80) == 0x7f80 && (b & 0x7f) != 0;
    }

    private static void assertRounds(float x) {
        short want = nearest(x), got = Bf16.round(x);
        if (Float.isNaN(x) ? isNaN(got) && (want & 0x8000) == (got & 0x8000) : want == got) return;
        String msg = String.format("round(0x%08x = %s)", Float.floatToRawIntBits(x), x);
        if (Float.isNaN(x)) {
            assertTrue(isNaN(got), msg + " stays NaN, got 0x" + Integer.toHexString(got & 0xffff));
            assertEquals(want & 0x8000, got & 0x8000, msg + " keeps the sign of NaN");
        } else {
            assertEquals(Integer.toHexString(want & 0xffff), Integer.toHexString(got & 0xffff), msg);
        }
    }

    private static float f(int bits) {
        return Float.intBitsToFloat(bits);
    }

    @Test
    void edgeCasesRoundToNearestEven() {
        int[] cases = {
            0x00000000, // +0
            0x3f800000, // 1, exact
            0x3f808000, // tie above 1 (kept lsb 0): stays 1
            0x3f818000, // tie above 1 + ulp (kept lsb 1): goes up to 1 + 2 ulp
            0x3f807fff, 0x3f808001, // just below and just above a tie
            0x3f817fff, 0x3f818001,
            0x3f80ffff, // just below the next bfloat16
            0x3fffffff, 0x3fff8000, 0x3fff7fff, // carry into the exponent
            0x00000001, // smallest subnormal: to 0
            0x00008000, 0x00018000, 0x00008001, 0x00007fff, // subnormal ties and their neighbours
            0x0000ffff, 0x00010000,
            0x007fffff, 0x007f8000, 0x007f7fff, // largest subnormal: up to the smallest normal
            0x00800000, 0x00808000, 0x00818000,
            0x7f7f0000, // largest finite bfloat16
            0x7f7f7fff, // just below the tie under infinity: stays finite
            0x7f7f8000, // the tie: kept lsb is 1, so up to infinity
            0x7f7fffff, // Float.MAX_VALUE: infinity
            0x7f000000, 0x7effffff,
            0x7f800000, // +inf
            0x7f800001, 0x7fbfffff, 0x7fc00000, 0x7fffffff, 0x7f80ffff, 0x7f810000, // NaNs, signalling and quiet
            0x4b7fffff, 0x4b7f8000, 0x4b808000, 0x4b818000, // large integers' ties
        };
        for (int c : cases) {
            assertRounds(f(c));
            assertRounds(f(c | 0x80000000));
        }
        // A few by value, spelled out.
        assertEquals((short) 0x3f80, Bf16.round(f(0x3f808000)));
        assertEquals((short) 0x3f82, Bf16.round(f(0x3f818000)));
        assertEquals((short) 0x7f80, Bf16.round(Float.MAX_VALUE));
        assertEquals((short) 0xff80, Bf16.round(-Float.MAX_VALUE));
        assertEquals((short) 0x7f7f, Bf16.round(f(0x7f7f7fff)));
        assertEquals((short) 0x0000, Bf16.round(0f));
        assertEquals((short) 0x8000, Bf16.round(-0f));
        assertEquals((short) 0x7f80, Bf16.round(Float.POSITIVE_INFINITY));
        assertEquals((short) 0xff80, Bf16.round(Float.NEGATIVE_INFINITY));
        assertEquals((short) 0x0080, Bf16.round(f(0x007fffff)));
        assertEquals((short) 0x0000, Bf16.round(Float.MIN_VALUE));
        assertTrue(Float.isNaN(Bf16.widen(Bf16.round(Float.NaN))));
        assertTrue(Float.isNaN(Bf16.widen(Bf16.round(f(0x7f800001)))), "a NaN whose payload is all below bit 16 must not become infinity");
        assertTrue(Float.isNaN(Bf16.widen(Bf16.round(f(0xff800001)))));
    }

    /** Every low half under a few high halves: every position relative to the ties, exhaustively. */
    @Test
    void allLowHalvesUnderSelectedHighHalves() {
        int[] highs = {0x0000, 0x0001, 0x007f, 0x0080, 0x3f80, 0x3f81, 0x3fff, 0x4049, 0x7f7e, 0x7f7f, 0x7f80, 0x7fc0,
            0x8000, 0x807f, 0xbf80, 0xbf81, 0xff7f, 0xff80};
        for (int h : highs) {
            for (int low = 0; low < 0x10000; low++) assertRounds(f((h << 16) | low));
        }
    }

    @Test
    void randomBitPatternsAndRandomValues() {
        SplittableRandom r = new SplittableRandom(20240601);
        for (int i = 0; i < 500_000; i++) assertRounds(f(r.nextInt()));
        for (int i = 0; i < 500_000; i++) {
            double scale = Math.scalb(1.0, r.nextInt(-140, 128));
            assertRounds((float) (r.nextDouble(-1, 1) * scale));
        }
    }

    @Test
    void widenIsExactAndRoundOfARepresentableValueIsIdentity() {
        for (int b = 0; b < 0x10000; b++) {
            short s = (short) b;
            float w = Bf16.widen(s);
            assertEquals(b << 16, Float.floatToRawIntBits(w), "widening puts the bits on top");
            if (isNaN(s)) {
                assertTrue(Float.isNaN(w));
                assertTrue(isNaN(Bf16.round(w)));
                continue;
            }
            assertEquals(s, Bf16.round(w), "round(widen(b)) for 0x" + Integer.toHexString(b));
            assertEquals(Float.floatToRawIntBits(w), Float.floatToRawIntBits(Bf16.widen(Bf16.round(w))), "idempotent");
        }
    }

    // ---- stochastic rounding ----

    private static float neighbourDown(float x) {
        return f(Float.floatToRawIntBits(x) & 0xffff0000);
    }

    /** The neighbour one bfloat16 step further from zero (infinity above the largest finite value). */
    private static float neighbourUp(float x) {
        return f((Float.floatToRawIntBits(x) & 0xffff0000) + 0x10000);
    }

    /** Over all 2^16 random low halves: only the two neighbours, and exactly x on average. */
    private static void assertUnbiased(float x) {
        String msg = "stochastic(0x" + Integer.toHexString(Float.floatToRawIntBits(x)) + " = " + x + ")";
        float down = neighbourDown(x), up = neighbourUp(x);
        boolean exact = down == x || Float.floatToRawIntBits(x) == Float.floatToRawIntBits(down);
        double sum = 0;
        int ups = 0;
        for (int random = 0; random < 0x10000; random++) {
            float got = Bf16.widen(Bf16.stochastic(x, random));
            if (exact) {
                if (Float.floatToRawIntBits(x) != Float.floatToRawIntBits(got)) {
                    assertEquals(Float.floatToRawIntBits(x), Float.floatToRawIntBits(got), msg + " exact values are kept");
                }
                continue;
            }
            boolean isDown = Float.floatToRawIntBits(got) == Float.floatToRawIntBits(down);
            boolean isUp = Float.floatToRawIntBits(got) == Float.floatToRawIntBits(up);
            if (!isDown && !isUp) fail(msg + " gave " + got + ", not " + down + " or " + up);
            if (isUp) ups++;
            sum += got;
        }
        if (exact) return;
        // The probability of going up is the distance from the value below, in units of the step.
        double p = ((double) x - down) / ((double) up - down);
        assertEquals(p * 0x10000, ups, 0.0, msg + " rounds up exactly p·2^16 times");
        assertEquals((double) x, sum / 0x10000, 0.0, msg + " mean over all 2^16 patterns");
    }

    @Test
    void stochasticIsExactlyUnbiasedOverAllPatterns() {
        float[] xs = {1.00390625f + 1e-4f, 0.1f, -0.1f, 3.14159265f, -2.71828f, 1e-3f, -7.5e5f, 1e30f, -1e-30f,
            f(0x3f808000), f(0x3f80ffff), f(0x3f800001), f(0xbf800001), f(0x00012345), f(0x80012345), f(0x007fffff),
            f(0x7f7e1234), f(0xff7e8000), 1f, -1f, 0f, -0f, 0.5f, f(0x3f810000)};
        for (float x : xs) assertUnbiased(x);
        SplittableRandom r = new SplittableRandom(7);
        for (int i = 0; i < 300; i++) {
            int bits = r.nextInt();
            int exp = (bits >>> 23) & 0xff;
            if (exp == 0xff || (bits & 0x7fff0000) == 0x7f7f0000) continue; // inf/NaN, or rounding up would overflow
            assertUnbiased(f(bits));
        }
    }

    @Test
    void stochasticUsesOnlyTheLowSixteenRandomBitsAndKeepsSpecials() {
        SplittableRandom r = new SplittableRandom(11);
        for (int i = 0; i < 100_000; i++) {
            float x = f(r.nextInt());
            int random = r.nextInt();
            short a = Bf16.stochastic(x, random), b = Bf16.stochastic(x, random & 0xffff);
            if (Float.isNaN(x)) {
                assertTrue(isNaN(a) && isNaN(b));
            } else {
                assertEquals(a, b);
            }
        }
        for (int random : new int[] {0, 1, 0x8000, 0xffff, -1}) {
            assertTrue(isNaN(Bf16.stochastic(Float.NaN, random)));
            assertTrue(isNaN(Bf16.stochastic(f(0x7f800001), random)));
            assertEquals((short) 0x7f80, Bf16.stochastic(Float.POSITIVE_INFINITY, random));
            assertEquals((short) 0xff80, Bf16.stochastic(Float.NEGATIVE_INFINITY, random));
            assertEquals((short) 0x0000, Bf16.stochastic(0f, random));
            assertEquals((short) 0x8000, Bf16.stochastic(-0f, random));
        }
        // Between the largest finite value and the step above it, up means infinity.
        assertEquals((short) 0x7f7f, Bf16.stochastic(f(0x7f7f0001), 0));
        assertEquals((short) 0x7f80, Bf16.stochastic(f(0x7f7f0001), 0xffff));
    }

    // ---- the counter-based generator ----

    @Test
    void randomBitsAreAFunctionOfKeyAndIndex() {
        for (long key : new long[] {0, 1, -1, 42, Long.MIN_VALUE}) {
            for (long i = 0; i < 1000; i++) assertEquals(Bf16.randomBits(key, i), Bf16.randomBits(key, i));
        }
        long k = Bf16.updateKey(1, 2, 0, "w");
        assertEquals(k, Bf16.updateKey(1, 2, 0, "w"));
        assertNotEquals(k, Bf16.updateKey(1, 3, 0, "w"));
        assertNotEquals(k, Bf16.updateKey(2, 2, 0, "w"));
        assertNotEquals(k, Bf16.updateKey(1, 2, 0, "v"));
        assertNotEquals(k, Bf16.updateKey(1, 2, 1, "w"));
    }

    @Test
    void randomBitsLookUncorrelated() {
        int n = 200_000;
        long[] keys = {0, 1, 2, 12345, Bf16.updateKey(3, 4, 0, "layer.0.weight"), Bf16.updateKey(3, 5, 0, "layer.0.weight")};
        double sigma = 0.5 / Math.sqrt(n);
        for (long key : keys) {
            long[] ones = new long[32];
            long agreeNext = 0, agreeKey = 0, sameValue = 0;
            double lowMean = 0;
            for (int i = 0; i < n; i++) {
                int x = Bf16.randomBits(key, i), next = Bf16.randomBits(key, i + 1), other = Bf16.randomBits(key + 1, i);
                for (int b = 0; b < 32; b++) ones[b] += (x >>> b) & 1;
                agreeNext += 32 - Integer.bitCount(x ^ next);
                agreeKey += 32 - Integer.bitCount(x ^ other);
                if (x == other) sameValue++;
                lowMean += x & 0xffff;
            }
            for (int b = 0; b < 32; b++) {
                assertEquals(0.5, ones[b] / (double) n, 6 * sigma, "key " + key + ": bit " + b + " is set half the time");
            }
            double bitSigma = 0.5 / Math.sqrt(32.0 * n);
            assertEquals(0.5, agreeNext / (32.0 * n), 6 * bitSigma, "key " + key + ": neighbouring indices agree on half the bits");
            assertEquals(0.5, agreeKey / (32.0 * n), 6 * bitSigma, "key " + key + ": neighbouring keys agree on half the bits");
            assertTrue(sameValue <= 2, "key " + key + ": another key gives another sequence");
            // The low 16 bits drive the rounding: uniform on [0, 65535] has mean 32767.5 and sd 65536/√12.
            assertEquals(32767.5, lowMean / n, 6 * 65536 / Math.sqrt(12.0 * n), "key " + key + ": low half is uniform on average");
        }
    }
}
