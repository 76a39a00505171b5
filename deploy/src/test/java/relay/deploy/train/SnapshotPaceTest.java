package relay.deploy.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** When snapshots are taken: a fixed interval as given; auto's interval worked out by hand from the measured step times. */
class SnapshotPaceTest {
    @Test
    void aFixedIntervalIsKeptWhateverTheCost() {
        SnapshotPace p = new SnapshotPace(3);
        for (int step = 1; step <= 9; step++) {
            boolean due = p.due(step, step % 3 == 1 ? 5.0 : 1.0);
            assertEquals(step % 3 == 0, due, "step " + step);
            if (due) p.taken(step);
        }
        assertEquals(3, p.interval());
    }

    /** Steps {@code from}..{@code to} of the calibration: plain ones of {@code plain} s, and ones with a snapshot {@code extra} s longer. */
    private static void calibrate(SnapshotPace p, double plain, double extra) {
        assertTrue(p.due(1, 9.0), "a first snapshot at once, warming up");
        p.taken(1);
        assertFalse(p.due(2, 5.0), "its step is not measured: then a plain one");
        for (int step = 3; step <= 2 + 2 * SnapshotPace.CALIBRATION; step += 2) {
            assertTrue(p.due(step, plain), "step " + step + " plain: a snapshot after it");
            p.taken(step);
            if (step + 1 < 2 + 2 * SnapshotPace.CALIBRATION) assertFalse(p.due(step + 1, plain + extra), "step " + (step + 1) + " took one");
        }
    }

    @Test
    void autoSnapshotsEveryStepWhileTheCostIsWithinTheBudget() {
        SnapshotPace p = new SnapshotPace(SnapshotPace.AUTO);
        calibrate(p, 1.0, 0.02);
        // Steps taking one ran 0.02 s longer than plain 1 s ones: within 3%.
        assertTrue(p.due(10, 1.02));
        assertEquals(1, p.interval());
    }

    @Test
    void autoSpacesSnapshotsOutToKeepTheirMeasuredCostWithinTheBudget() {
        SnapshotPace p = new SnapshotPace(SnapshotPace.AUTO);
        calibrate(p, 2.0, 0.3);
        // Steps taking one ran 0.3 s longer than plain 2 s ones: against 3% of 2 s (0.06 s), 5 steps apart.
        assertFalse(p.due(10, 2.3));
        assertEquals(5, p.interval());
        for (int step = 11; step <= 13; step++) assertFalse(p.due(step, 2.0), "step " + step);
        assertTrue(p.due(14, 2.0));
        p.taken(14);
        // Smoothed: 0.7 · 0.3 + 0.3 · 0.2 = 0.27 s → ⌈0.27 / 0.06⌉ = 5.
        assertFalse(p.due(15, 2.2));
        assertEquals(5, p.interval());
        // A step taking one that ran faster than the plain ones lowers the estimate: 0.7 · 0.27 + 0.3 · (−0.1) = 0.159 s → 3.
        for (int step = 16; step <= 18; step++) assertFalse(p.due(step, 2.0), "step " + step);
        assertTrue(p.due(19, 2.0));
        p.taken(19);
        p.due(20, 1.9);
        assertEquals(3, p.interval());
    }
}
