package relay.actors;

import java.util.Arrays;

/**
 * Which device each pipeline stage runs on. Stage 0 is the embedding, 1..L the blocks, L+1 the head.
 * Stages go to devices in order (a device holds a contiguous run of stages) and every device holds one.
 */
public record Placement(int devices, int[] deviceOfStage) {

    public Placement {
        deviceOfStage = deviceOfStage.clone();
        if (devices < 1) throw new IllegalArgumentException("a placement needs at least one device");
        if (deviceOfStage.length < 3) throw new IllegalArgumentException("a model has at least embedding, one block and head");
        if (deviceOfStage[0] != 0) throw new IllegalArgumentException("the embedding must be on device 0");
        for (int s = 1; s < deviceOfStage.length; s++) {
            int d = deviceOfStage[s], prev = deviceOfStage[s - 1];
            if (d < prev || d > prev + 1) {
                throw new IllegalArgumentException("stage " + s + " on device " + d + " after device " + prev
                        + ": stages must fill devices in order " + Arrays.toString(deviceOfStage));
            }
        }
        if (deviceOfStage[deviceOfStage.length - 1] != devices - 1) {
            throw new IllegalArgumentException("placement " + Arrays.toString(deviceOfStage) + " does not use all " + devices + " devices");
        }
    }

    public int stages() {
        return deviceOfStage.length;
    }

    public int device(int stage) {
        return deviceOfStage[stage];
    }

    /** A stage's name: the embedding, block-i or the head. */
    public String stageName(int stage) {
        return StageSpec.name(stage, stages() - 2);
    }

    /** The lowest stage on a device. */
    public int firstOnDevice(int d) {
        for (int s = 0; s < deviceOfStage.length; s++) if (deviceOfStage[s] == d) return s;
        throw new IllegalArgumentException("no stage on device " + d);
    }

    /** The highest stage on a device. */
    public int lastOnDevice(int d) {
        for (int s = deviceOfStage.length - 1; s >= 0; s--) if (deviceOfStage[s] == d) return s;
        throw new IllegalArgumentException("no stage on device " + d);
    }

    /** The highest stage on a device that runs a backward of its own (not the head, whose backward is fused), or −1. */
    public int lastBackwardOnDevice(int d) {
        int s = lastOnDevice(d) == deviceOfStage.length - 1 ? deviceOfStage.length - 2 : lastOnDevice(d);
        return s >= 0 && deviceOfStage[s] == d ? s : -1;
    }

    @Override
    public int[] deviceOfStage() {
        return deviceOfStage.clone();
    }

    /** The most loaded device's total cost: what sets the pace of a pipeline's steady state. */
    public double maxLoad(double[] cost) {
        double[] load = new double[devices];
        for (int s = 0; s < cost.length; s++) load[deviceOfStage[s]] += cost[s];
        return Arrays.stream(load).max().orElse(0);
    }

    /** Contiguous stages on devices so that the most loaded device carries as little as possible. */
    public static Placement balanced(double[] cost, int devices) {
        int n = cost.length;
        if (devices > n) throw new IllegalArgumentException(devices + " devices for " + n + " stages");
        double[] prefix = new double[n + 1];
        for (int s = 0; s < n; s++) prefix[s + 1] = prefix[s] + cost[s];
        // best[d][s]: least maximal load placing stages [0, s) on d devices; cut[d][s] where the last device starts.
        double[][] best = new double[devices + 1][n + 1];
        int[][] cut = new int[devices + 1][n + 1];
        for (double[] row : best) Arrays.fill(row, Double.POSITIVE_INFINITY);
        best[0][0] = 0;
        for (int d = 1; d <= devices; d++) {
            for (int s = d; s <= n; s++) {
                for (int k = d - 1; k < s; k++) {
                    double load = Math.max(best[d - 1][k], prefix[s] - prefix[k]);
                    if (load < best[d][s]) {
                        best[d][s] = load;
                        cut[d][s] = k;
                    }
                }
            }
        }
        int[] device = new int[n];
        int s = n;
        for (int d = devices; d >= 1; d--) {
            int k = cut[d][s];
            for (int t = k; t < s; t++) device[t] = d - 1;
            s = k;
        }
        return new Placement(devices, device);
    }
}
