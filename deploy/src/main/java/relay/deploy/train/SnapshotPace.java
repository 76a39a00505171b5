package relay.deploy.train;

/**
 * When a run snapshots into its nodes' memory: every {@code every} steps, or ({@link #AUTO}) as often as its measured
 * cost allows — at most {@link #BUDGET} of the training time between two snapshots. A snapshot costs the copy at the
 * step boundary (the steps wait for it) and what sending the copy takes from the step after it (the nodes' cores
 * also compute); both are measured on the run, smoothed, and the interval follows them. The first step only
 * warms up and the second is measured without one, so the first snapshot comes after step 2.
 */
final class SnapshotPace {
    /** {@code snapshot-every = auto}. */
    static final int AUTO = -1;
    /** The most of the training time snapshots may take. */
    static final double BUDGET = 0.03;
    /** Weight of the newest measurement in the smoothed ones. */
    private static final double NEWEST = 0.3;

    private final int every;
    private double plain = Double.NaN, cost = Double.NaN, copy;
    private int steps, last;
    private boolean after;

    SnapshotPace(int every) {
        this.every = every;
    }

    /** Step {@code done} took {@code seconds} (the snapshot before it not counted); returns whether to snapshot after it. */
    boolean due(int done, double seconds) {
        if (++steps == 1) return every > 0 && done % every == 0;
        // Unclipped: a step after a snapshot that ran faster than the plain ones is noise that cancels the noise the other way.
        if (after) cost = smooth(cost, copy + seconds - plain);
        else plain = smooth(plain, seconds);
        after = false;
        if (every != AUTO) return done % every == 0;
        return Double.isNaN(cost) || done - last >= interval();
    }

    /** The snapshot after step {@code done} was taken; the steps waited {@code copySeconds} for it. */
    void taken(int done, double copySeconds) {
        last = done;
        copy = copySeconds;
        after = true;
    }

    /** Steps between two snapshots: the fewest that keep their measured cost within the budget. */
    int interval() {
        if (every != AUTO) return every;
        return Double.isNaN(cost) || Double.isNaN(plain) ? 1 : stepsApart(cost, plain);
    }

    /** The fewest steps of {@code stepSeconds} between two snapshots of {@code costSeconds} that keep them within the budget. */
    static int stepsApart(double costSeconds, double stepSeconds) {
        // A cost exactly at the budget is within it: measured times carry rounding that must not add a step.
        return Math.max(1, (int) Math.ceil(costSeconds / (BUDGET * stepSeconds) - 1e-9));
    }

    private static double smooth(double old, double now) {
        return Double.isNaN(old) ? now : (1 - NEWEST) * old + NEWEST * now;
    }
}
