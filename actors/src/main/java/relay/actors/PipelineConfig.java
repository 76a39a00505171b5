package relay.actors;

import java.time.Duration;
import relay.optimizers.Method;
import relay.optimizers.OptimizerSettings;
import relay.stages.model.Precision;

/**
 * How a pipeline trains, in three groups — what trains ({@link Training}), how its work runs ({@link Execution}),
 * what is watched ({@link Limits}) — and the step it starts at (0, or the next step of a resumed run: schedules
 * and LISA draws go on from there). Changing one setting replaces its group alone.
 */
public record PipelineConfig(Training training, Execution execution, Limits limits, long firstStep) {

    /** The method (one that runs in the pipeline; with {@code lisa} the blocks are sampled) and its settings. */
    public record Training(Method method, OptimizerSettings settings, boolean lisa) {
        public Training {
            if (!method.inPipeline()) throw new IllegalArgumentException("optimizer '" + method.key() + "' runs on the plain loop only");
            if (lisa && !method.takesLisa()) throw new IllegalArgumentException("LISA does not combine with " + method.key());
        }
    }

    /**
     * The update mode, the schedule, the CPU threads each device computes with ({@link #THREADS_AUTO}: its node's
     * cores split evenly among the node's devices), whether blocks recompute their activations in backward, and how
     * weights and activations are stored.
     */
    public record Execution(UpdateMode mode, PipelineSchedule schedule, int threadsPerDevice, boolean recompute, Precision precision) {
        public Execution {
            if (threadsPerDevice < THREADS_AUTO) throw new IllegalArgumentException("threads per device must be ≥ 1, or auto");
            if (precision == null) throw new IllegalArgumentException("a precision is required");
        }

        /** Threads per device: each node's cores ÷ the devices it hosts. */
        public static final int THREADS_AUTO = 0;

        /** The threads of each of a node's {@code nodeDevices} devices, on a node of {@code cores} cores. */
        public int threadsOnNode(int cores, int nodeDevices) {
            return threadsPerDevice != THREADS_AUTO ? threadsPerDevice : evenShare(cores, nodeDevices);
        }

        /** Each of {@code among}'s share of {@code cores}, evenly, at least one: what auto gives a device (or a worker JVM of one machine). */
        public static int evenShare(int cores, int among) {
            return Math.max(1, cores / Math.max(1, among));
        }

        /** Float32 weights and activations. */
        public Execution(UpdateMode mode, PipelineSchedule schedule, int threadsPerDevice, boolean recompute) {
            this(mode, schedule, threadsPerDevice, recompute, Precision.F32);
        }
    }

    /** For how many steps actors record a trace, and how long a step may take. */
    public record Limits(long traceSteps, Duration stepTimeout) {
        public Limits {
            if (stepTimeout.isNegative() || stepTimeout.isZero()) throw new IllegalArgumentException("the step timeout must be > 0");
        }
    }

    public PipelineConfig {
        if (firstStep < 0) throw new IllegalArgumentException("the first step must be ≥ 0");
    }

    public static PipelineConfig defaults(Method method, float lr) {
        return new PipelineConfig(new Training(method, OptimizerSettings.defaults(lr), false),
                new Execution(UpdateMode.EAGER, PipelineSchedule.ONE_F_ONE_B, 1, false), new Limits(0, Duration.ofMinutes(10)), 0);
    }

    public UpdateMode mode() {
        return execution.mode();
    }

    public PipelineSchedule schedule() {
        return execution.schedule();
    }

    public int threadsPerDevice() {
        return execution.threadsPerDevice();
    }

    public boolean recompute() {
        return execution.recompute();
    }

    public Precision precision() {
        return execution.precision();
    }

    public Method method() {
        return training.method();
    }

    public OptimizerSettings settings() {
        return training.settings();
    }

    public boolean lisa() {
        return training.lisa();
    }

    public long traceSteps() {
        return limits.traceSteps();
    }

    public Duration stepTimeout() {
        return limits.stepTimeout();
    }

    /**
     * How long a request other than a step may take — building the stages (reading a large model's weights),
     * gathering their weights or state: the step timeout, and never less than ten minutes.
     */
    public Duration requestTimeout() {
        return stepTimeout().compareTo(Duration.ofMinutes(10)) > 0 ? stepTimeout() : Duration.ofMinutes(10);
    }

    public PipelineConfig with(UpdateMode m, PipelineSchedule s) {
        return with(new Execution(m, s, threadsPerDevice(), recompute(), precision()));
    }

    /** Blocks that recompute their activations in backward, or keep them. */
    public PipelineConfig withRecompute(boolean on) {
        return with(new Execution(mode(), schedule(), threadsPerDevice(), on, precision()));
    }

    /** Devices computing with this many threads each, or {@link Execution#THREADS_AUTO}. */
    public PipelineConfig withThreadsPerDevice(int threads) {
        return with(new Execution(mode(), schedule(), threads, recompute(), precision()));
    }

    /** Weights and activations stored as {@code p}. */
    public PipelineConfig withPrecision(Precision p) {
        return with(new Execution(mode(), schedule(), threadsPerDevice(), recompute(), p));
    }

    public PipelineConfig with(Execution e) {
        return new PipelineConfig(training, e, limits, firstStep);
    }

    public PipelineConfig withSettings(OptimizerSettings s, boolean withLisa) {
        return new PipelineConfig(new Training(method(), s, withLisa), execution, limits, firstStep);
    }

    /** Tracing of every step, or none. */
    public PipelineConfig withTrace(boolean on) {
        return withTraceSteps(on ? Long.MAX_VALUE : 0);
    }

    /** Tracing of the first {@code steps} steps. */
    public PipelineConfig withTraceSteps(long steps) {
        return new PipelineConfig(training, execution, new Limits(steps, stepTimeout()), firstStep);
    }

    /** A step not finished within {@code timeout} fails, naming the stage reports still missing. */
    public PipelineConfig withStepTimeout(Duration timeout) {
        return new PipelineConfig(training, execution, new Limits(traceSteps(), timeout), firstStep);
    }

    /** Starting at {@code step}, the next step of a resumed run. */
    public PipelineConfig withFirstStep(long step) {
        return new PipelineConfig(training, execution, limits, step);
    }
}
