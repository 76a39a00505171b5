package relay.deploy.train;

/**
 * When a run snapshots into its nodes' memory: every {@code every} steps, or ({@link #AUTO}) as often as its measured
 * cost allows — at most {@link #BUDGET} of the training time between two snapshots. A snapshot is taken at the start
 * of the step after it and sent while that step runs; what it costs is how much slower that step ran than the steps
 * without one (the copy, and the cores the sending takes from the devices), measured on the run, smoothed, and the
 * interval follows it. The first snapshot is of the first step and warms up (connections to the holders, code paths);
 * the step after it is not measured, the next one is measured plain, and the second snapshot, of that step, is the
 * first whose cost is measured.
 */
final class SnapshotPace {
    /** {@code snapshot-every = auto}. */
    static final int AUTO = -1;
    /** The most of the training time snapshots may take. */
    static final double BUDGET = 0.03;
    /** Weight of the newest measurement in the smoothed ones. */
    private static final double NEWEST = 0.3;

    private final int every;
    private double plain = Double.NaN, cost = Double.NaN;
    private int steps, last, snapshots;
    private boolean after;

    SnapshotPace(int every) {
        this.every = every;
    }

    /**
     * Step {@code done} took {@code seconds}, a snapshot's copy included if one was taken at its start; returns whether
     * to snapshot the state after it (at the next step's start).
     */
    boolean due(int done, double seconds) {
        if (every != AUTO) return done % every == 0;
        // The first snapshot comes at once (its step also warms up, so neither is measured); then one plain step.
        if (++steps == 1) return true;
        if (!after) {
            plain = smooth(plain, seconds);
        } else if (snapshots > 1) {
            // Unclipped: a step with a snapshot that ran faster than the plain ones is noise that cancels the noise the other way.
            cost = smooth(cost, seconds - plain);
        }
        after = false;
        if (Double.isNaN(plain)) return false;
        return Double.isNaN(cost) || done - last >= interval();
    }

    /** The state after step {@code done} is snapshotted at the next step's start. */
    void taken(int done) {
        snapshots++;
        last = done;
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
