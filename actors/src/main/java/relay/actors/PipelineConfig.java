package relay.actors;

import java.time.Duration;
import relay.optimizers.Method;
import relay.optimizers.OptimizerSettings;

/**
 * How a pipeline trains: the update mode, the schedule, the method (one that runs in the pipeline; with
 * {@code lisa} the blocks are sampled), its settings (learning rate, clipping, LISA's γ and period), the
 * CPU threads each device computes with, for how many steps actors record a trace, how long a step may take,
 * the step it starts at (0, or the next step of a resumed run: schedules and LISA draws go on from there), and
 * whether blocks keep only their input and recompute their activations in backward.
 */
public record PipelineConfig(UpdateMode mode, PipelineSchedule schedule, Method method, OptimizerSettings settings,
                             boolean lisa, int threadsPerDevice, long traceSteps, Duration stepTimeout, long firstStep,
                             boolean recompute) {

    public PipelineConfig {
        if (!method.inPipeline()) throw new IllegalArgumentException("optimizer '" + method.key() + "' runs on the plain loop only");
        if (lisa && !method.takesLisa()) throw new IllegalArgumentException("LISA does not combine with " + method.key());
        if (threadsPerDevice < 1) throw new IllegalArgumentException("threads per device must be ≥ 1");
        if (firstStep < 0) throw new IllegalArgumentException("the first step must be ≥ 0");
        if (stepTimeout.isNegative() || stepTimeout.isZero()) throw new IllegalArgumentException("the step timeout must be > 0");
    }

    /**
     * How long a request other than a step may take — building the stages (reading a large model's weights),
     * gathering their weights or state: the step timeout, and never less than ten minutes.
     */
    public Duration requestTimeout() {
        return stepTimeout.compareTo(Duration.ofMinutes(10)) > 0 ? stepTimeout : Duration.ofMinutes(10);
    }

    public static PipelineConfig defaults(Method method, float lr) {
        return new PipelineConfig(UpdateMode.EAGER, PipelineSchedule.ONE_F_ONE_B, method, OptimizerSettings.defaults(lr),
                false, 1, 0, Duration.ofMinutes(10), 0, false);
    }

    public PipelineConfig with(UpdateMode m, PipelineSchedule s) {
        return new PipelineConfig(m, s, method, settings, lisa, threadsPerDevice, traceSteps, stepTimeout, firstStep, recompute);
    }

    public PipelineConfig withSettings(OptimizerSettings s, boolean withLisa) {
        return new PipelineConfig(mode, schedule, method, s, withLisa, threadsPerDevice, traceSteps, stepTimeout, firstStep, recompute);
    }

    /** Tracing of every step, or none. */
    public PipelineConfig withTrace(boolean on) {
        return withTraceSteps(on ? Long.MAX_VALUE : 0);
    }

    /** Tracing of the first {@code steps} steps. */
    public PipelineConfig withTraceSteps(long steps) {
        return new PipelineConfig(mode, schedule, method, settings, lisa, threadsPerDevice, steps, stepTimeout, firstStep, recompute);
    }

    /** A step not finished within {@code timeout} fails, naming the stage reports still missing. */
    public PipelineConfig withStepTimeout(Duration timeout) {
        return new PipelineConfig(mode, schedule, method, settings, lisa, threadsPerDevice, traceSteps, timeout, firstStep, recompute);
    }

    /** Blocks that recompute their activations in backward, or keep them. */
    public PipelineConfig withRecompute(boolean on) {
        return new PipelineConfig(mode, schedule, method, settings, lisa, threadsPerDevice, traceSteps, stepTimeout, firstStep, on);
    }

    /** Starting at {@code step}, the next step of a resumed run. */
    public PipelineConfig withFirstStep(long step) {
        return new PipelineConfig(mode, schedule, method, settings, lisa, threadsPerDevice, traceSteps, stepTimeout, step, recompute);
    }
}
