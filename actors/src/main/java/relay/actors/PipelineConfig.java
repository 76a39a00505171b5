package relay.actors;

import java.time.Duration;
import relay.optimizers.OptimizerSettings;

/**
 * How a pipeline trains: the update mode, the schedule, the optimizer (lomo, sgd, adalomo, adamw; with
 * {@code lisa} the blocks are sampled), its settings (learning rate, clipping, LISA's γ and period), the
 * CPU threads each device computes with, for how many steps actors record a trace, and how long a step may take.
 */
public record PipelineConfig(UpdateMode mode, PipelineSchedule schedule, String optimizer, OptimizerSettings settings,
                             boolean lisa, int threadsPerDevice, long traceSteps, Duration stepTimeout) {

    public PipelineConfig {
        if (threadsPerDevice < 1) throw new IllegalArgumentException("threads per device must be ≥ 1");
    }

    public static PipelineConfig defaults(String optimizer, float lr) {
        return new PipelineConfig(UpdateMode.EAGER, PipelineSchedule.ONE_F_ONE_B, optimizer, OptimizerSettings.defaults(lr),
                false, 1, 0, Duration.ofMinutes(10));
    }

    public PipelineConfig with(UpdateMode m, PipelineSchedule s) {
        return new PipelineConfig(m, s, optimizer, settings, lisa, threadsPerDevice, traceSteps, stepTimeout);
    }

    public PipelineConfig withSettings(OptimizerSettings s, boolean withLisa) {
        return new PipelineConfig(mode, schedule, optimizer, s, withLisa, threadsPerDevice, traceSteps, stepTimeout);
    }

    /** Tracing of every step, or none. */
    public PipelineConfig withTrace(boolean on) {
        return withTraceSteps(on ? Long.MAX_VALUE : 0);
    }

    /** Tracing of the first {@code steps} steps. */
    public PipelineConfig withTraceSteps(long steps) {
        return new PipelineConfig(mode, schedule, optimizer, settings, lisa, threadsPerDevice, steps, stepTimeout);
    }
}
