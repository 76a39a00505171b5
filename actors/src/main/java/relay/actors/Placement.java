package relay.actors;

import java.util.Arrays;

/**
 * Which device each pipeline stage runs on, in each of {@code replicas} copies of the pipeline. Stage 0 is the
 * embedding, 1..L the blocks, L+1 the head. Stages go to devices in order (a device holds a contiguous run of
 * stages) and every device holds one. Replica r's stages run on devices r × devices … (r + 1) × devices − 1, so
 * the stage actors are numbered replica by replica: actor r × stages + s is stage s of replica r (one replica:
 * actor and stage are the same number).
 */
public record Placement(int devices, int[] deviceOfStage, int replicas) {

    public Placement {
        deviceOfStage = deviceOfStage.clone();
        if (devices < 1) throw new IllegalArgumentException("a placement needs at least one device");
        if (replicas < 1) throw new IllegalArgumentException("a placement needs at least one replica, not " + replicas);
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

    /** One replica of the pipeline on these devices. */
    public Placement(int devices, int[] deviceOfStage) {
        this(devices, deviceOfStage, 1);
    }

    /** The same pipeline in {@code r} replicas. */
    public Placement withReplicas(int r) {
        return new Placement(devices, deviceOfStage, r);
    }

    /** Stages of one replica of the pipeline. */
    public int stages() {
        return deviceOfStage.length;
    }

    /** Stage actors of every replica. */
    public int actors() {
        return replicas * stages();
    }

    /** Devices of every replica. */
    public int allDevices() {
        return replicas * devices;
    }

    /** The stage an actor runs, in its replica's pipeline. */
    public int stageOf(int actor) {
        return actor % stages();
    }

    /** The replica an actor belongs to. */
    public int replicaOf(int actor) {
        return actor / stages();
    }

    /** The actor of stage {@code stage} in replica {@code replica}. */
    public int actor(int replica, int stage) {
        return replica * stages() + stage;
    }

    /** The device (of all replicas') an actor runs on. */
    public int deviceOfActor(int actor) {
        return replicaOf(actor) * devices + device(stageOf(actor));
    }

    public int device(int stage) {
        return deviceOfStage[stage];
    }

    /** An actor's name: the embedding, block-i or the head, with its replica's number where there are several. */
    public String stageName(int actor) {
        return StageSpec.name(stageOf(actor), stages() - 2, replicas == 1 ? -1 : replicaOf(actor));
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
