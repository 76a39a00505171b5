package relay.actors.plan;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import relay.actors.Coordinator;
import relay.actors.Pipeline;
import relay.actors.PipelineConfig;
import relay.actors.PipelineSchedule;
import relay.actors.Placement;
import relay.actors.ScheduleSimulation;
import relay.actors.UpdateMode;
import relay.optimizers.Method;
import relay.stages.model.ModelConfig;
import relay.stages.train.Batch;

/**
 * The plan's speed against the pipeline's own: the step time, tokens per second and bubble the planner predicts
 * for one-thread CPU devices of this machine — each stage's cost as its spans showed in a calibration run, the
 * schedule played out with them, the way a plan for these devices is made — against the wall time and bubble of
 * the same steps, within 10% for tokens per second and 0.05 for the bubble. What is checked is what the plan adds
 * to the stages' costs: the schedule, the messages, the coordinator. (Timed in another run, the steps also carry
 * the machine's drift between runs, up to 10% here.) Only as many devices as the machine has cores: devices sharing
 * a core run at another speed than their costs were measured at. Tagged "wallclock": it times the machine itself,
 * so it runs with {@code mvn -B test -Pwallclock} on an idle machine, not in every {@code mvn -B test}.
 */
@Timeout(600)
@Tag("wallclock")
class PlanTimeTest {

    @ParameterizedTest(name = "{0} devices, {1}, {2} microbatches")
    @CsvSource({"2, gpipe, 8", "2, 1f1b, 8", "3, 1f1b, 6", "4, gpipe, 8", "4, 1f1b, 8"})
    void predictedSpeedAndBubbleMatchARealRun(int devices, String schedule, int microbatches) {
        Assumptions.assumeTrue(Runtime.getRuntime().availableProcessors() >= devices,
                devices + " devices need as many cores; this machine has " + Runtime.getRuntime().availableProcessors());
        ModelConfig cfg = ModelConfig.named("llama-train");
        int seq = 256, batch = microbatches;
        PipelineConfig pc = PipelineConfig.defaults(Method.LOMO, 1e-3f)
                .with(UpdateMode.EXACT, PipelineSchedule.parse(schedule));
        DeviceSpec spec = DeviceSpec.parse(devices + "xcpu", 1e10, 1e10, 1e10, 1L << 34);
        Placement placement = Placement.balanced(Planner.costs(cfg, spec, batch / microbatches, seq).total(), devices);
        List<Batch> data = Planner.batches(cfg, batch / microbatches, seq, microbatches);
        Planner.Calibration calibration;
        try (Pipeline p = Pipeline.start(cfg, 1, placement, pc.withTraceSteps(2 + Planner.CALIBRATION_STEPS), ConfigFactory.empty())) {
            calibration = Planner.calibrate(p, data, 0, placement.stages());
        }
        ScheduleSimulation.Outcome predicted = Planner.time(cfg, spec, calibration.costs(), placement, pc, batch / microbatches, seq,
                microbatches);
        double measured = median(calibration.steps().stream().mapToDouble(r -> r.wallNanos() / 1e9).toArray());
        double bubble = median(calibration.steps().stream().mapToDouble(Coordinator.StepResult::bubble).toArray());
        double tokens = (double) batch * seq;
        System.out.printf("%d devices %s m=%d: predicted %.1f tokens/s bubble %.3f, measured %.1f tokens/s bubble %.3f%n",
                devices, schedule, microbatches, tokens / predicted.stepTime(), predicted.bubble(), tokens / measured, bubble);
        assertEquals(1.0, measured / predicted.stepTime(), 0.10, "tokens/s predicted " + tokens / predicted.stepTime() + ", measured " + tokens / measured);
        assertEquals(bubble, predicted.bubble(), 0.05, "bubble");
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }
}
