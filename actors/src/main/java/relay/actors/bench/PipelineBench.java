package relay.actors.bench;

import com.typesafe.config.ConfigFactory;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Supplier;
import relay.actors.Coordinator;
import relay.actors.Nodes;
import relay.actors.Pipeline;
import relay.actors.PipelineConfig;
import relay.actors.PipelineSchedule;
import relay.actors.Placement;
import relay.actors.ScheduleSimulation;
import relay.actors.UpdateMode;
import relay.actors.plan.StageCosts;
import relay.optimizers.OptimizerSettings;
import relay.optimizers.Method;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.train.Batch;
import relay.stages.train.ReferenceTrainer;
import relay.stages.train.SyntheticData;
import relay.stages.train.TrainingMethod;

/**
 * The actor pipeline against the plain loop in one run, on the same total threads: the loop on one device
 * with every thread, the pipeline on {@code devices} devices of {@code threadsPerDevice} each, and with replicas
 * R &gt; 1 also R replicas of a pipeline on devices ÷ R devices each (each taking 1/R of every microbatch). All
 * train the same model on the same microbatches with LOMO (eager; classic SGD for exact mode).
 */
public final class PipelineBench {
    private PipelineBench() {}

    /**
     * {@code clusterTokensPerSecond}: the same pipeline on the cluster's nodes; NaN without one.
     * {@code bubbleTheory}: the closed form for equal devices; {@code bubbleSimulated}: the schedule played out
     * with the stage costs measured before the run ({@code costs}, seconds per microbatch). {@code replicated}: the
     * replicas' run, or null with one replica.
     */
    public record Result(double tokensPerSecond, double referenceTokensPerSecond, double clusterTokensPerSecond, double bubbleMeasured,
                         double bubbleTheory, double bubbleSimulated, long stalenessMax, Placement placement, StageCosts costs,
                         double[] pipelineStepSeconds, double[] referenceStepSeconds, double[] busyFractionPerDevice, Replicated replicated) {}

    /** R replicas of the pipeline on devices ÷ R devices each: their placement, tokens/s, bubble and busy fraction per device. */
    public record Replicated(Placement placement, double tokensPerSecond, double bubbleMeasured, double[] stepSeconds, double[] busyFractionPerDevice) {}

    /**
     * @param clipNorm LOMO's clipping by global norm (0: off), which adds a norm-only pass to every step
     * @param cluster  nodes of a cluster to run the same pipeline on after this JVM's, made when needed (null: none);
     *                 the caller closes them
     */
    public static Result run(ModelConfig cfg, int batch, int seq, int devices, int threadsPerDevice, int replicas, int microbatches,
                             PipelineSchedule schedule, UpdateMode mode, int steps, Path trace, float clipNorm, Supplier<Nodes> cluster) throws IOException {
        if (batch % microbatches != 0) {
            throw new IllegalArgumentException("batch " + batch + " does not split into " + microbatches + " microbatches");
        }
        int mbBatch = batch / microbatches;
        if (replicas > 1 && (devices % replicas != 0 || mbBatch % replicas != 0)) {
            throw new IllegalArgumentException(replicas + " replicas need devices (" + devices + ") and each microbatch's sequences (" + mbBatch
                    + ") to split evenly among them");
        }
        float lr = 1e-3f;
        OptimizerSettings settings = OptimizerSettings.defaults(lr).withClipping(new relay.optimizers.Clipping(0f, clipNorm));
        SyntheticData data = new SyntheticData(cfg.vocabSize(), mbBatch, seq, 0.1, 3);
        List<List<Batch>> stepsData = new ArrayList<>();
        for (int s = 0; s <= steps; s++) {
            List<Batch> mbs = new ArrayList<>();
            for (int j = 0; j < microbatches; j++) mbs.add(data.next());
            stepsData.add(mbs);
        }
        double tokensPerStep = (double) batch * seq;

        // The plain loop: one device with all the threads the pipeline's devices have together.
        double[] refSeconds = new double[steps];
        Method method = mode == UpdateMode.EAGER ? Method.LOMO : Method.SGD;
        try (CpuDevice d = new CpuDevice("reference", devices * threadsPerDevice); Model m = Model.initialize(cfg, d, 1);
             TrainingMethod tm = method.create(m, settings)) {
            ReferenceTrainer t = new ReferenceTrainer(m, tm);
            t.step(stepsData.get(0));
            for (int s = 1; s <= steps; s++) {
                long t0 = System.nanoTime();
                t.step(stepsData.get(s));
                refSeconds[s - 1] = (System.nanoTime() - t0) / 1e9;
            }
        }

        StageCosts costs = StageCosts.measure(cfg, mbBatch, seq, relay.stages.model.Precision.F32, threadsPerDevice);
        Placement placement = Placement.balanced(costs.total(), devices);
        double simulated = ScheduleSimulation.run(schedule, ScheduleSimulation.deviceCosts(placement, costs.forward(), costs.backward(),
                costs.weights(), schedule), microbatches).bubble();
        PipelineConfig pc = PipelineConfig.defaults(Method.LOMO, lr).with(mode, schedule).withThreadsPerDevice(threadsPerDevice).withTrace(trace != null)
                .withSettings(settings, false);
        Timing local;
        try (Pipeline p = Pipeline.start(cfg, 1, placement, pc, ConfigFactory.empty())) {
            local = time(p, stepsData, trace);
        }
        double clusterTokensPerSecond = Double.NaN;
        if (cluster != null) {
            try (Pipeline p = Pipeline.start(cluster.get(), cfg, 1, null, placement, pc)) {
                clusterTokensPerSecond = tokensPerStep / median(time(p, stepsData, null).seconds);
            }
        }
        Replicated replicated = null;
        if (replicas > 1) {
            Placement each = Placement.balanced(costs.total(), devices / replicas).withReplicas(replicas);
            try (Pipeline p = Pipeline.start(cfg, 1, each, pc, ConfigFactory.empty())) {
                Timing t = time(p, stepsData, null);
                replicated = new Replicated(each, tokensPerStep / median(t.seconds), median(t.bubbles), t.seconds, t.busy);
            }
        }
        return new Result(tokensPerStep / median(local.seconds), tokensPerStep / median(refSeconds), clusterTokensPerSecond,
                median(local.bubbles), PipelineSchedule.theoreticalBubble(devices, microbatches), simulated, local.staleness, placement,
                costs, local.seconds, refSeconds, local.busy, replicated);
    }

    /** Per timed step: seconds and bubble; over all: the largest staleness and each device's mean busy fraction. */
    private record Timing(double[] seconds, double[] bubbles, long staleness, double[] busy) {}

    /** Steps the pipeline over the data, the first step a warm-up. */
    private static Timing time(Pipeline p, List<List<Batch>> stepsData, Path trace) throws IOException {
        int steps = stepsData.size() - 1, devices = p.placement().allDevices();
        double[] seconds = new double[steps], bubbles = new double[steps], busy = new double[devices];
        long staleness = 0;
        check(p.step(stepsData.get(0)));
        p.trace();
        for (int s = 1; s <= steps; s++) {
            long t0 = System.nanoTime();
            Coordinator.StepResult r = check(p.step(stepsData.get(s)));
            seconds[s - 1] = (System.nanoTime() - t0) / 1e9;
            bubbles[s - 1] = r.bubble();
            staleness = Math.max(staleness, r.staleness());
            for (int d = 0; d < devices; d++) busy[d] += r.busyNanos()[d] / (double) r.wallNanos() / steps;
        }
        if (trace != null) p.writeTrace(trace);
        return new Timing(seconds, bubbles, staleness, busy);
    }

    private static Coordinator.StepResult check(Coordinator.StepResult r) {
        if (!r.ok()) throw new IllegalStateException("pipeline step failed: " + r.error());
        return r;
    }

    static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }
}
