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

    @Test
    void autoSnapshotsEveryStepWhileTheCostIsWithinTheBudget() {
        SnapshotPace p = new SnapshotPace(SnapshotPace.AUTO);
        assertTrue(p.due(1, 9.0), "a first snapshot at once, warming up");
        p.taken(1);
        assertFalse(p.due(2, 3.0), "then one plain step");
        assertTrue(p.due(3, 1.0), "measured plain; then the first measured snapshot");
        p.taken(3);
        // The step taking it ran 0.02 s longer than the plain one: within 3% of 1 s.
        assertTrue(p.due(4, 1.02));
        assertEquals(1, p.interval());
    }

    @Test
    void autoSpacesSnapshotsOutToKeepTheirMeasuredCostWithinTheBudget() {
        SnapshotPace p = new SnapshotPace(SnapshotPace.AUTO);
        assertTrue(p.due(1, 9.0));
        p.taken(1);
        assertFalse(p.due(2, 5.0));
        assertTrue(p.due(3, 2.0));
        p.taken(3);
        // The step taking it ran 0.3 s longer than a plain 2 s one: against 3% of 2 s (0.06 s), 5 steps apart.
        assertFalse(p.due(4, 2.3));
        assertEquals(5, p.interval());
        for (int step = 5; step <= 7; step++) assertFalse(p.due(step, 2.0), "step " + step);
        assertTrue(p.due(8, 2.0));
        p.taken(8);
        // Smoothed: 0.7 · 0.3 + 0.3 · 0.2 = 0.27 s → ⌈0.27 / 0.06⌉ = 5.
        assertFalse(p.due(9, 2.2));
        assertEquals(5, p.interval());
        // A step taking one that ran faster than the plain ones lowers the estimate: 0.7 · 0.27 + 0.3 · (−0.1) = 0.159 s → 3.
        for (int step = 10; step <= 12; step++) assertFalse(p.due(step, 2.0), "step " + step);
        assertTrue(p.due(13, 2.0));
        p.taken(13);
        p.due(14, 1.9);
        assertEquals(3, p.interval());
    }
}
