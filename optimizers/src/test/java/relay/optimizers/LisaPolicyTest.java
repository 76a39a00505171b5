package relay.optimizers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

class LisaPolicyTest {

    /** Each block is drawn with probability γ/L: counts over many draws stay within 4 binomial σ. */
    @Test
    void eachBlockIsChosenWithFrequencyGammaOverBlocks() {
        int blocks = 12, gamma = 3, draws = 20000;
        LisaPolicy lisa = new LisaPolicy(blocks, gamma, 1, 99);
        int[] counts = new int[blocks];
        for (int s = 0; s < draws; s++) {
            int[] a = lisa.activeBlocks(s);
            assertEquals(gamma, Arrays.stream(a).distinct().count(), "without replacement");
            for (int b : a) counts[b]++;
        }
        double p = (double) gamma / blocks, mean = draws * p, sigma = Math.sqrt(draws * p * (1 - p));
        for (int b = 0; b < blocks; b++) {
            assertTrue(Math.abs(counts[b] - mean) < 4 * sigma, "block " + b + ": " + counts[b] + " vs " + mean);
        }
    }

    @Test
    void setChangesOnlyEveryPeriodSteps() {
        LisaPolicy lisa = new LisaPolicy(8, 2, 5, 1);
        for (int s = 0; s < 50; s++) {
            assertArrayEquals(lisa.activeBlocks(s - s % 5), lisa.activeBlocks(s));
            assertEquals(s % 5 == 0, lisa.redrawsAt(s));
        }
    }

    @Test
    void sameSeedSameSequenceAndResumingChangesNothing() {
        LisaPolicy a = new LisaPolicy(10, 4, 3, 7), b = new LisaPolicy(10, 4, 3, 7), other = new LisaPolicy(10, 4, 3, 8);
        boolean differs = false;
        for (int s = 0; s < 60; s++) {
            assertArrayEquals(a.activeBlocks(s), b.activeBlocks(s));
            differs |= !Arrays.equals(a.activeBlocks(s), other.activeBlocks(s));
        }
        assertTrue(differs, "another seed gives another sequence");
        // A policy rebuilt at step 31 (a resumed run) continues exactly as the uninterrupted one.
        LisaPolicy resumed = new LisaPolicy(10, 4, 3, 7);
        for (int s = 31; s < 60; s++) assertArrayEquals(a.activeBlocks(s), resumed.activeBlocks(s));
    }
}
