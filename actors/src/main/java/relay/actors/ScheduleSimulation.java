package relay.actors;

import java.util.Arrays;
import java.util.List;

/**
 * A schedule played out on paper: each device runs its plan in order, an action starting once the device is
 * free and its input is there, taking the time its device's stages take for it; messages cost nothing. The
 * bubble this gives for measured stage costs is the schedule's theory for an unbalanced pipeline, which the
 * closed form (p − 1)/(m + p − 1) only gives for equal devices and unsplit backwards.
 */
public final class ScheduleSimulation {
    private ScheduleSimulation() {}

    /**
     * One device's time per microbatch: its forwards (the head's includes its fused backward), its input gradients
     * (with an unsplit schedule the whole backward), its weight gradients (split schedules), and {@code settle}: how
     * long it waits after each microbatch's weight gradients (its W where the schedule splits backward, else its
     * backward), its backward's message already sent — eager replicas settling their sums before its next action.
     */
    public record DeviceCosts(double forward, double backward, double weights, double settle) {
        public DeviceCosts(double forward, double backward, double weights) {
            this(forward, backward, weights, 0);
        }
    }

    /** The simulated step: its length and the idle fraction 1 − Σ busy / (devices × length). */
    public record Outcome(double stepTime, double bubble) {}

    /**
     * The device costs of a placement from each stage's measured forward, input-gradient and weight-gradient
     * time; a schedule that does not split backwards runs both gradients in its backward.
     */
    public static DeviceCosts[] deviceCosts(Placement placement, double[] forward, double[] backward, double[] weights,
                                            PipelineSchedule schedule) {
        DeviceCosts[] out = new DeviceCosts[placement.devices()];
        int head = placement.stages() - 1;
        for (int d = 0; d < out.length; d++) {
            double f = 0, b = 0, w = 0;
            for (int s = placement.firstOnDevice(d); s <= placement.lastOnDevice(d); s++) {
                f += forward[s];
                if (s == head) continue;
                b += backward[s] + (schedule.splitsBackward() ? 0 : weights[s]);
                w += schedule.splitsBackward() ? weights[s] : 0;
            }
            out[d] = new DeviceCosts(f, b, w);
        }
        return out;
    }

    /** Plays the schedule's plans for m microbatches on these devices (device 0 first in the pipeline). */
    public static Outcome run(PipelineSchedule schedule, DeviceCosts[] devices, int microbatches) {
        int p = devices.length;
        double[][] forwardDone = new double[p][microbatches], backwardDone = new double[p][microbatches];
        for (double[] row : forwardDone) Arrays.fill(row, Double.NaN);
        for (double[] row : backwardDone) Arrays.fill(row, Double.NaN);
        List<List<PipelineSchedule.Action>> plans = new java.util.ArrayList<>();
        for (int d = 0; d < p; d++) plans.add(schedule.plan(d, p, microbatches));
        int[] next = new int[p];
        double[] free = new double[p], busy = new double[p];
        PipelineSchedule.Kind settles = schedule.splitsBackward() ? PipelineSchedule.Kind.W : PipelineSchedule.Kind.B;
        boolean progress = true;
        while (progress) {
            progress = false;
            for (int d = 0; d < p; d++) {
                for (; next[d] < plans.get(d).size(); next[d]++) {
                    PipelineSchedule.Action a = plans.get(d).get(next[d]);
                    int j = a.microbatch();
                    double ready = switch (a.kind()) {
                        case F -> d == 0 ? 0 : forwardDone[d - 1][j];
                        case B -> d == p - 1 ? forwardDone[d][j] : backwardDone[d + 1][j];
                        case W -> backwardDone[d][j];
                    };
                    if (Double.isNaN(ready)) break;
                    DeviceCosts c = devices[d];
                    double cost = switch (a.kind()) {
                        case F -> c.forward();
                        case B -> c.backward();
                        case W -> c.weights();
                    };
                    double end = Math.max(free[d], ready) + cost;
                    free[d] = end + (a.kind() == settles ? c.settle() : 0);
                    busy[d] += cost;
                    if (a.kind() == PipelineSchedule.Kind.F) forwardDone[d][j] = end;
                    if (a.kind() == PipelineSchedule.Kind.B) backwardDone[d][j] = end;
                    progress = true;
                }
            }
        }
        for (int d = 0; d < p; d++) {
            if (next[d] < plans.get(d).size()) {
                throw new IllegalStateException(schedule.key() + " deadlocks on device " + d + " at " + plans.get(d).get(next[d]));
            }
        }
        double length = Arrays.stream(free).max().orElse(0);
        return new Outcome(length, length > 0 ? 1 - Arrays.stream(busy).sum() / (p * length) : 0);
    }
}
