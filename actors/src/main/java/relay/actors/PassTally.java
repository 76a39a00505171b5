package relay.actors;

import java.util.Arrays;
import java.util.Set;
import java.util.TreeSet;

/**
 * What the stages report of one pass: each microbatch's loss, each device's compute time, the most staleness
 * and the summed squared gradient norm; and which stages have yet to report their share.
 */
final class PassTally {
    private final Position pass;
    private final Placement placement;
    private final long start;
    private final double[] losses;
    /** Each microbatch's loss by replica, until every replica's is in (one replica: straight into losses). */
    private final double[][] byReplica;
    private final long[] busy;
    private final Set<Integer> waiting = new TreeSet<>();
    private long staleness;
    private double normSquared;

    PassTally(Position pass, Placement placement, long start) {
        this.pass = pass;
        this.placement = placement;
        this.start = start;
        this.losses = new double[pass.microbatches()];
        Arrays.fill(losses, Double.NaN);
        this.byReplica = new double[pass.microbatches()][placement.replicas()];
        for (double[] l : byReplica) Arrays.fill(l, Double.NaN);
        this.busy = new long[placement.allDevices()];
        for (int s = 0; s < placement.actors(); s++) waiting.add(s);
    }

    /** Takes the pass's losses and shares; returns true once every stage's share is in. */
    boolean take(StageEvent e) {
        if (e instanceof StageEvent.Loss l && l.pos().samePass(pass)) {
            int j = l.pos().microbatch();
            byReplica[j][placement.replicaOf(l.stage())] = l.loss();
            losses[j] = meanOfShares(byReplica[j]);
        } else if (e instanceof StageEvent.PassDone d && d.pos().samePass(pass)) {
            normSquared += d.normSquared();
            busy[placement.deviceOfActor(d.stage())] += d.busyNanos();
            staleness = Math.max(staleness, d.staleness());
            waiting.remove(d.stage());
            return waiting.isEmpty();
        }
        return false;
    }

    /**
     * A microbatch's loss: the mean of its replicas' shares, each its mean over the targets it counts, weighed (see
     * StageCommand.Targets#weight); NaN until all are in.
     */
    private static double meanOfShares(double[] shares) {
        double sum = 0;
        for (double l : shares) sum += l;
        return sum / shares.length;
    }

    Pass kind() {
        return pass.pass();
    }

    Set<Integer> waiting() {
        return waiting;
    }

    double normSquared() {
        return normSquared;
    }

    double[] losses() {
        return losses;
    }

    /**
     * The pass's loss, the mean over every target it counts (each microbatch's loss comes weighed by the targets it
     * counts: see StageCommand.Targets#weight): a step's as a compensated mean of its microbatches' (what its metrics
     * have always shown), an evaluation's as the plain sum over its batches in order divided by their count (as the
     * plain loop evaluates), so that neither number depends on where the model runs.
     */
    double meanLoss() {
        if (pass.pass() != Pass.EVAL) return Arrays.stream(losses).average().orElse(Double.NaN);
        double sum = 0;
        for (double l : losses) sum += l;
        return sum / losses.length;
    }

    /** A step's result from its updating pass, whose bubble is 1 − Σ busy / (devices × wall time). */
    Coordinator.StepResult stepResult(long step, double gradNorm, CoordinatorLoad load) {
        long wall = System.nanoTime() - start;
        double bubble = 1 - Arrays.stream(busy).sum() / (placement.allDevices() * (double) wall);
        return new Coordinator.StepResult(step, meanLoss(), losses, wall, busy, bubble, staleness, gradNorm, load.messagesWithReply(),
                load.nanos(), null, null);
    }

    Coordinator.StepResult evaluationResult(long step, CoordinatorLoad load) {
        return new Coordinator.StepResult(step, meanLoss(), losses, System.nanoTime() - start, busy, Double.NaN, 0, Double.NaN,
                load.messagesWithReply(), load.nanos(), null, null);
    }

    /** The reply of a step or an evaluation that failed, with the losses it has. */
    static Coordinator.StepResult failed(long step, double[] losses, CoordinatorLoad load, String error, StageEvent.Failure kind) {
        return new Coordinator.StepResult(step, Double.NaN, losses, 0, new long[0], Double.NaN, 0, Double.NaN, load.messagesWithReply(),
                load.nanos(), error, kind);
    }
}
