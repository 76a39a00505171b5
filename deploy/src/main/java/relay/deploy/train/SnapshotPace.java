package relay.deploy.train;

/**
 * When a run snapshots into its nodes' memory: every {@code every} steps, or ({@link #AUTO}) as often as its measured
 * cost allows — at most {@link #BUDGET} of the training time between two snapshots. A snapshot is taken at the start
 * of the step after it and sent while that step runs; what it costs is how much slower that step ran than the steps
 * without one (the copy, and the cores the sending takes from the devices), measured on the run, smoothed, and the
 * interval follows it. The first snapshot is of the first step and warms up (connections to the holders, code paths),
 * and the step after it is not measured; then plain steps and steps with a snapshot alternate until each kind is
 * measured {@link #CALIBRATION} times (a snapshot every other step), and the interval follows the measurements.
 */
final class SnapshotPace {
    /** {@code snapshot-every = auto}. */
    static final int AUTO = -1;
    /** The most of the training time snapshots may take. */
    static final double BUDGET = 0.03;
    /** Weight of the newest measurement in the smoothed ones, once there are {@link #CALIBRATION} (their mean before). */
    private static final double NEWEST = 0.3;
    /** Measurements of each kind (plain steps, steps with a snapshot) before the interval follows them. */
    static final int CALIBRATION = 4;

    private final int every;
    private double plain = Double.NaN, cost = Double.NaN;
    private int steps, last, snapshots, plains, costs;
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
        // The first snapshot comes at once (its step also warms up, so neither is measured).
        if (++steps == 1) return true;
        boolean took = after;
        if (!took) {
            plain = smooth(plain, seconds, ++plains);
        } else if (snapshots > 1) {
            // Unclipped: a step with a snapshot that ran faster than the plain ones is noise that cancels the noise the other way.
            cost = smooth(cost, seconds - plain, ++costs);
        }
        after = false;
        // Calibrating: plain steps and steps with a snapshot alternate until each kind is measured CALIBRATION times.
        if (plains < CALIBRATION || costs < CALIBRATION) return !took;
        return done - last >= interval();
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
        return costs == 0 || plains == 0 ? 1 : stepsApart(cost, plain);
    }

    /** The fewest steps of {@code stepSeconds} between two snapshots of {@code costSeconds} that keep them within the budget. */
    static int stepsApart(double costSeconds, double stepSeconds) {
        // A cost exactly at the budget is within it: measured times carry rounding that must not add a step.
        return Math.max(1, (int) Math.ceil(costSeconds / (BUDGET * stepSeconds) - 1e-9));
    }

    /** The mean of the first {@link #CALIBRATION} measurements, then an exponential average: {@code now} is the {@code n}-th. */
    private static double smooth(double old, double now, int n) {
        return n == 1 ? now : n <= CALIBRATION ? old + (now - old) / n : (1 - NEWEST) * old + NEWEST * now;
    }
}
