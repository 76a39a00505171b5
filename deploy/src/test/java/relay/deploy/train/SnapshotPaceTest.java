package relay.deploy.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** When snapshots are taken: a fixed interval as given; auto's interval worked out by hand from the measured costs. */
class SnapshotPaceTest {
    @Test
    void aFixedIntervalIsKeptWhateverTheCost() {
        SnapshotPace p = new SnapshotPace(3);
        for (int step = 1; step <= 9; step++) {
            boolean due = p.due(step, 1.0);
            assertEquals(step % 3 == 0, due, "step " + step);
            if (due) p.taken(step, 5.0);
        }
        assertEquals(3, p.interval());
    }

    @Test
    void autoSnapshotsEveryStepWhileTheCostIsWithinTheBudget() {
        SnapshotPace p = new SnapshotPace(SnapshotPace.AUTO);
        assertFalse(p.due(1, 9.0), "the first step warms up");
        assertTrue(p.due(2, 1.0), "the second is measured plain; then the first snapshot");
        p.taken(2, 0.01);
        // Copy 0.01 s, the next step 0.01 s slower: 0.02 s of a 1 s step is within 3%.
        assertTrue(p.due(3, 1.01));
        assertEquals(1, p.interval());
    }

    @Test
    void autoSpacesSnapshotsOutToKeepTheirMeasuredCostWithinTheBudget() {
        SnapshotPace p = new SnapshotPace(SnapshotPace.AUTO);
        p.due(1, 9.0);
        assertTrue(p.due(2, 2.0));
        p.taken(2, 0.2);
        // 0.2 s of copy and 0.1 s more for the next step: 0.3 s against 3% of 2 s (0.06 s) is 5 steps apart.
        assertFalse(p.due(3, 2.1));
        assertEquals(5, p.interval());
        for (int step = 4; step <= 6; step++) assertFalse(p.due(step, 2.0), "step " + step);
        assertTrue(p.due(7, 2.0));
        p.taken(7, 0.2);
        // Smoothed: 0.7 · 0.3 + 0.3 · (0.2 + 0.0) = 0.27 s → ⌈0.27 / 0.06⌉ = 5.
        assertFalse(p.due(8, 2.0));
        assertEquals(5, p.interval());
        // A step after a snapshot that ran faster than the plain ones lowers the estimate: 0.7 · 0.27 + 0.3 · (0.2 − 0.3) = 0.159 s → 3.
        for (int step = 9; step <= 11; step++) assertFalse(p.due(step, 2.0), "step " + step);
        assertTrue(p.due(12, 2.0));
        p.taken(12, 0.2);
        p.due(13, 1.7);
        assertEquals(3, p.interval());
    }
}
