package relay.actors.bench;

import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import relay.actors.Coordinator;
import relay.actors.DeviceKind;
import relay.actors.Pipeline;
import relay.actors.PipelineConfig;
import relay.actors.PipelineSchedule;
import relay.actors.Placement;
import relay.actors.ScheduleSimulation;
import relay.actors.TraceEvent;
import relay.actors.UpdateMode;
import relay.actors.plan.Planner;
import relay.actors.plan.StageCosts;
import relay.optimizers.Method;
import relay.optimizers.OptimizerSettings;
import relay.stages.model.Family;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.sim.Roofline;
import relay.stages.train.Batch;

/**
 * The real pipeline — stage actors, their messages, the coordinator — at a scale no machine here has: hundreds of
 * stages on simulated devices whose kernels wait the time a roofline gives them. A small LLaMA shape keeps the
 * host's own work per kernel small; the roofline is scaled so that a block's forward takes {@code blockMillis}.
 * Reports what limits scale: the coordinator's messages and time per step, the busiest actor's load, and the
 * measured bubble against the schedule's for the same stage costs.
 */
public final class SimulateBench {
    private SimulateBench() {}

    /**
     * @param coordinatorMessages per step; {@code coordinatorLoad} the coordinator's handling time over the step's
     * @param busiestActorLoad    the largest share of a step one stage actor spent in its spans (forward, backward,
     *                            weights, sends), and {@code busiestActor} which
     */
    public record Result(int stages, int devices, int microbatches, double[] stepSeconds, double predictedStepSeconds,
                         double bubbleMeasured, double bubblePredicted, long coordinatorMessages, double coordinatorLoad,
                         double busiestActorLoad, String busiestActor, double blockForwardMillis) {}

    /** A LLaMA of {@code stages − 2} blocks, small in every dimension. */
    public static ModelConfig model(int stages) {
        return new ModelConfig(Family.LLAMA, 256, 64, stages - 2, 4, 4, 16, 128, 64, 1e-5f, 10000, false);
    }

    /**
     * @param lisaGamma blocks LISA trains, drawn anew every step (the most the coordinator can have to say to the
     *                  blocks: a SetTrainable to each and its answer), with LOMO; 0 for LOMO on every block
     */
    public static Result run(int stages, int devices, int microbatches, PipelineSchedule schedule, UpdateMode mode, double blockMillis,
                             int steps, int lisaGamma) {
        ModelConfig cfg = model(stages);
        int seq = 32;
        Roofline unit = new Roofline(1e9, 1e10, 1e-6);
        StageCosts base = StageCosts.modelled(cfg, 1, seq, unit);
        double scale = blockMillis / 1e3 / base.forward()[1];
        Roofline roofline = new Roofline(unit.flops() / scale, unit.bytesPerSecond() / scale, unit.launchSeconds() * scale);
        StageCosts costs = StageCosts.modelled(cfg, 1, seq, roofline);
        Placement placement = Placement.balanced(costs.total(), devices);
        ScheduleSimulation.Outcome predicted = ScheduleSimulation.run(schedule,
                ScheduleSimulation.deviceCosts(placement, costs.forward(), costs.backward(), costs.weights(), schedule), microbatches);
        PipelineConfig pc = PipelineConfig.defaults(lisaGamma > 0 ? Method.LISA_LOMO : Method.LOMO, 1e-3f).with(mode, schedule)
                .withTraceSteps(steps + 1);
        if (lisaGamma > 0) pc = pc.withSettings(pc.settings().withLisa(new OptimizerSettings.Lisa(lisaGamma, 1)), true);
        List<Batch> data = Planner.batches(cfg, 1, seq, microbatches);
        double[] seconds = new double[steps], bubbles = new double[steps], coordinatorLoad = new double[steps];
        long messages = 0;
        List<TraceEvent> trace;
        try (Pipeline p = Pipeline.start(DeviceKind.simulated(roofline, 1), cfg, 1, placement, pc)) {
            check(p.step(data));
            for (int s = 0; s < steps; s++) {
                Coordinator.StepResult r = check(p.step(data));
                seconds[s] = r.wallNanos() / 1e9;
                bubbles[s] = r.bubble();
                coordinatorLoad[s] = r.coordinatorNanos() / (double) r.wallNanos();
                messages = r.coordinatorMessages();
            }
            trace = p.trace();
        }
        // Each actor's busy time per timed step, from its own spans (waits are idle, not load).
        Map<String, Double> busy = new HashMap<>();
        for (TraceEvent e : trace) {
            if (e.step() >= 1 && !e.name().equals("wait")) busy.merge(e.actor(), e.durationMicros() / 1e6, Double::sum);
        }
        double total = Arrays.stream(seconds).sum();
        Map.Entry<String, Double> busiest = busy.entrySet().stream().max(Map.Entry.comparingByValue()).orElseThrow();
        return new Result(stages, devices, microbatches, seconds, predicted.stepTime(), PipelineBench.median(bubbles), predicted.bubble(), messages,
                PipelineBench.median(coordinatorLoad), busiest.getValue() / total, busiest.getKey(), costs.forward()[1] * 1e3);
    }

    private static Coordinator.StepResult check(Coordinator.StepResult r) {
        if (!r.ok()) throw new IllegalStateException("simulated step failed: " + r.error());
        return r;
    }
}
