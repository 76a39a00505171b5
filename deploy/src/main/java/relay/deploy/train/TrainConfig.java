package relay.deploy.train;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import relay.actors.PipelineConfig;
import relay.actors.PipelineSchedule;
import relay.actors.UpdateMode;
import relay.optimizers.Clipping;
import relay.optimizers.Method;
import relay.optimizers.OptimizerSettings;
import relay.optimizers.OptimizerSettings.Adam;
import relay.optimizers.OptimizerSettings.Lisa;
import relay.optimizers.OptimizerSettings.LowRank;
import relay.optimizers.OptimizerSettings.LrSchedule;
import relay.stages.io.HfModelDirectory;
import relay.stages.io.ModelFileException;
import relay.stages.model.ModelConfig;
import relay.stages.model.Precision;
import relay.stages.tensor.DType;

/**
 * Every setting of {@code relay train}, bound once from the resolved {@code relay.train} HOCON and checked:
 * the model, the optimizer, the pipeline and the run. The optimizer's and the pipeline's settings derive
 * from it; no hyper-parameter is written anywhere else.
 *
 * @param precision how the model is stored: {@code dtype} (its weights) and {@code activations}, each f32 or bf16; "auto"
 *                  is resolved here — dtype to the model directory's stored dtype (float32 for a preset), activations
 *                  to the dtype
 */
public record TrainConfig(ModelPart model, OptimizerPart optimizer, PipelinePart pipeline, RunPart run, Precision precision) {

    /** A preset or a model directory, and a tokenizer.json to use instead of the model's own (empty: none). */
    public record ModelPart(String name, String tokenizer) {}

    /**
     * The method and its hyper-parameters, in the groups the update rules take; {@code lr} is already resolved from
     * "auto" (see {@link #from}). LISA samples the blocks when the method is lisa, or γ &gt; 0 with a method it combines
     * with; the schedule's total and the seed are the run's (see {@link #settings}).
     *
     * @param lisaGammaGiven whether γ was given rather than left at its default, which on a model of fewer blocks means
     *                       every block (a γ given must fit the model)
     */
    public record OptimizerPart(Method method, float lr, float weightDecay, int warmup, Adam adam, Clipping clipping, Lisa lisa,
                                boolean lisaGammaGiven, LowRank lowRank) {
        public boolean samplesBlocks() {
            return method.samplesBlocks() || (lisa.gamma() > 0 && method.takesLisa());
        }

        /** The settings the update rules take, with a schedule over the run's steps; γ 0 (LISA off) is stored as 1. */
        public OptimizerSettings settings(int steps, long seed) {
            return new OptimizerSettings(lr, weightDecay, adam, clipping, new LrSchedule(warmup, steps),
                    new Lisa(Math.max(1, lisa.gamma()), lisa.period()), lowRank, seed);
        }
    }

    /**
     * How the pipeline runs: the JVMs it spans (the coordinator's and nodes − 1 workers, the devices split among
     * the workers), devices (of each replica), replicas of the pipeline, the threads each computes with ({@link PipelineConfig.Execution#THREADS_AUTO}: each node's
     * cores split among its devices), microbatches per step, schedule, update mode, step timeout, steps traced, whether
     * LISA's draws re-balance the placement, and whether blocks recompute their activations in backward.
     */
    public record PipelinePart(int nodes, int devices, int replicas, int threadsPerDevice, int microbatches, PipelineSchedule schedule, UpdateMode mode,
                               Duration stepTimeout, int traceSteps, boolean rebalance, boolean recompute) {}

    /**
     * The data and the run around the steps; {@code packing}: instruction examples are packed several to a sequence
     * (each attending only to itself) instead of one to a sequence, padded.
     */
    public record RunPart(String data, int steps, int batch, int seq, double validationFraction, int evalEvery, int evalSequences,
                          int checkpointEvery, int snapshotEvery, int keepCheckpoints, int restarts, long seed, String out, boolean packing) {}

    /** Settings a resumed run may change: how it goes on, not what it is (model, data, method, seed, shapes of state). */
    static final List<String> CHANGEABLE_ON_RESUME = List.of("steps", "lr", "warmup", "weight-decay", "beta1", "beta2", "eps",
            "clip-value", "clip-norm", "batch", "microbatches", "nodes", "devices", "replicas", "threads-per-device", "schedule", "mode", "restarts", "step-timeout",
            "eval-every", "eval-sequences", "checkpoint-every", "snapshot-every", "keep-checkpoints", "trace-steps", "rebalance", "recompute");

    /** Microbatches a step when none are given: enough that two devices are busy for 0.8 of a pipelined step. */
    static final int AUTO_MICROBATCHES = 4;

    /** Settings that name files; they are made absolute where the command line is typed (see {@link #absolutePaths}). */
    private static final List<String> PATHS = List.of("model", "tokenizer", "data", "out");

    /** The microbatch size: batch / microbatches sequences. */
    public int microbatchSize() {
        return run.batch() / pipeline.microbatches();
    }

    /** The sequences each replica of the pipeline takes of a microbatch: what its stages compute on at once. */
    public int replicaMicrobatchSize() {
        return microbatchSize() / pipeline.replicas();
    }

    /**
     * This run with fewer replicas of the pipeline and the same global batch, in the same order, or null where the
     * batch does not split so: in exact mode by gradient accumulation — each replica's share of a microbatch stays, the
     * microbatches become R ÷ R' times as many — and in eager mode, whose update per microbatch must stay the whole
     * microbatch's, by each replica taking a larger share of the same microbatches.
     */
    public TrainConfig withReplicas(int replicas) {
        PipelinePart p = pipeline;
        boolean exact = p.mode() == UpdateMode.EXACT;
        if (replicas < 1 || (exact && p.microbatches() * p.replicas() % replicas != 0)) return null;
        int microbatches = exact ? p.microbatches() * p.replicas() / replicas : p.microbatches();
        if (run.batch() % microbatches != 0 || run.batch() / microbatches % replicas != 0) return null;
        return new TrainConfig(model, optimizer, new PipelinePart(p.nodes(), p.devices(), replicas, p.threadsPerDevice(), microbatches,
                p.schedule(), p.mode(), p.stepTimeout(), p.traceSteps(), p.rebalance(), p.recompute()), run, precision);
    }

    public OptimizerSettings optimizerSettings() {
        return optimizer.settings(run.steps(), run.seed());
    }

    /** The pipeline's configuration, starting at {@code firstStep} (0, or the next step of a resumed run). */
    public PipelineConfig pipelineConfig(long firstStep) {
        return new PipelineConfig(new PipelineConfig.Training(optimizer.method(), optimizerSettings(), optimizer.samplesBlocks()),
                new PipelineConfig.Execution(pipeline.mode(), pipeline.schedule(), pipeline.threadsPerDevice(), pipeline.recompute(), precision),
                new PipelineConfig.Limits(pipeline.traceSteps(), pipeline.stepTimeout()), firstStep);
    }

    /** Binds and checks {@code relay.train}; an unknown key or a bad value is an error naming the setting. */
    public static TrainConfig from(Config root) {
        Config c = root.getConfig("relay.train");
        // A misspelt setting would otherwise be ignored without a word (a run's config.conf from elsewhere, a test's settings).
        KnownSettings.check(c.atPath("relay.train"), "configuration");
        try {
            Method method = Method.named(c.getString("optimizer"));
            TrainConfig t = new TrainConfig(
                    new ModelPart(c.getString("model"), c.getString("tokenizer")),
                    new OptimizerPart(method, learningRate(c, method), (float) c.getDouble("weight-decay"), c.getInt("warmup"),
                            new Adam((float) c.getDouble("beta1"), (float) c.getDouble("beta2"), (float) c.getDouble("eps")),
                            clipping(c), new Lisa(c.getInt("lisa.gamma"), c.getInt("lisa.period")), given(c, "lisa.gamma"),
                            new LowRank(c.getInt("rank"), c.getInt("rso-period"), c.getInt("galore.gap"),
                                    (float) c.getDouble("galore.scale"), (float) c.getDouble("lora.alpha"))),
                    new PipelinePart(c.getInt("nodes"), c.getInt("devices"), c.getInt("replicas"), threadsPerDevice(c), microbatches(c), schedule(c), mode(c), c.getDuration("step-timeout"),
                            c.getInt("trace-steps"), flag(c, "rebalance"), flag(c, "recompute")),
                    new RunPart(c.getString("data"), c.getInt("steps"), c.getInt("batch"), c.getInt("seq"),
                            c.getDouble("validation-fraction"), c.getInt("eval-every"), c.getInt("eval-sequences"),
                            c.getInt("checkpoint-every"), snapshotEvery(c), c.getInt("keep-checkpoints"), c.getInt("restarts"), c.getLong("seed"),
                            c.getString("out"), flag(c, "packing")),
                    precision(c));
            t.validate();
            return t;
        } catch (ConfigException e) {
            throw new IllegalArgumentException("configuration: " + e.getMessage(), e);
        }
    }

    /**
     * The settings with every file they name made absolute against the working directory, so that the
     * run's config.conf means the same files wherever the run is resumed from. Presets and built-in
     * corpora stay names.
     */
    public static Config absolutePaths(Config root) {
        Config c = root;
        for (String key : PATHS) {
            String path = "relay.train." + key, v = c.getString(path);
            if (v.isEmpty() || v.startsWith("builtin:") || (key.equals("model") && relay.stages.model.ModelConfig.PRESETS.contains(v))) {
                continue;
            }
            c = c.withValue(path, com.typesafe.config.ConfigValueFactory.fromAnyRef(Path.of(v).toAbsolutePath().normalize().toString()));
        }
        return c;
    }

    /**
     * A resumed run's settings against those it was started with: changing what the run is (its model, data,
     * tokenizer, method, seed, sequence length, LISA's draws or the shapes of its state) is refused, listing
     * what a resume may change.
     */
    public static void checkResume(Config original, Config resumed) {
        Config was = original.getConfig("relay.train"), now = resumed.getConfig("relay.train");
        List<String> changed = now.entrySet().stream().map(Map.Entry::getKey).filter(k -> !CHANGEABLE_ON_RESUME.contains(k))
                .filter(k -> !was.hasPath(k) || !was.getValue(k).unwrapped().equals(now.getValue(k).unwrapped())).sorted().toList();
        if (!changed.isEmpty()) {
            throw new IllegalArgumentException("a resumed run cannot change " + changed.stream()
                    .map(k -> "relay.train." + k + " (" + (was.hasPath(k) ? was.getValue(k).unwrapped() : "unset") + " → "
                            + now.getValue(k).unwrapped() + ")").collect(Collectors.joining(", "))
                    + ": it is part of what the run is; a resume may change " + String.join(", ", CHANGEABLE_ON_RESUME));
        }
    }

    /** A number, or "auto": the method's rate for training from scratch, a tenth of it when fine-tuning a model directory. */
    private static float learningRate(Config c, Method method) {
        if (!c.getString("lr").equals("auto")) return (float) c.getDouble("lr");
        boolean fineTuning = Files.isDirectory(Path.of(c.getString("model")));
        return fineTuning ? method.defaultLearningRate() / 10 : method.defaultLearningRate();
    }

    /** dtype and activations: f32, bf16 or auto (see {@link TrainConfig}). */
    private static Precision precision(Config c) {
        DType weights = dtype(c, "dtype", "the model directory's own", () -> modelDtype(c.getString("model")));
        DType activations = dtype(c, "activations", "the dtype's", () -> weights);
        return new Precision(weights, activations);
    }

    private static DType dtype(Config c, String key, String auto, java.util.function.Supplier<DType> resolve) {
        String v = c.getString(key);
        if (v.trim().equalsIgnoreCase("auto")) return resolve.get();
        try {
            return DType.parse(v);
        } catch (IllegalArgumentException e) {
            String why = e.getMessage().contains("float16") ? ": float16 is not supported (its range needs loss scaling; bf16 has float32's)" : "";
            throw new IllegalArgumentException("configuration: relay.train." + key + " must be f32, bf16 or auto (" + auto + "), not '"
                    + v + "'" + why, e);
        }
    }

    /**
     * The dtype a run of this model is stored in unless told: a model directory's (a run directory's: its newest complete
     * checkpoint's), float32 for a preset or a config.json. A directory whose files cannot be read counts as float32 here:
     * loading it names the file and what is wrong with it.
     */
    static DType modelDtype(String model) {
        if (model.isBlank() || ModelConfig.PRESETS.contains(model)) return DType.F32;
        Path p = Path.of(model);
        if (!Files.isDirectory(p)) return DType.F32;
        try {
            if (!Files.isRegularFile(p.resolve("config.json"))) {
                Path newest = Checkpoint.newestComplete(p);
                if (newest == null) return DType.F32;
                p = newest;
            }
            return HfModelDirectory.storedDtype(p);
        } catch (ModelFileException | java.io.UncheckedIOException e) {
            return DType.F32;
        }
    }

    /** Whether a setting comes from a file or an argument rather than the defaults (the reference.conf files). */
    private static boolean given(Config c, String key) {
        return !"reference.conf".equals(c.getValue(key).origin().resource());
    }

    /** Checked as it is bound: a {@link Clipping} refuses a negative threshold with a message that names no setting. */
    private static Clipping clipping(Config c) {
        float value = (float) c.getDouble("clip-value"), norm = (float) c.getDouble("clip-norm");
        require(finite(value) && value >= 0, "clip-value", "must be ≥ 0 (0 turns it off), not " + value);
        require(finite(norm) && norm >= 0, "clip-norm", "must be ≥ 0 (0 turns it off), not " + norm);
        return new Clipping(value, norm);
    }

    private static PipelineSchedule schedule(Config c) {
        try {
            return PipelineSchedule.parse(c.getString("schedule"));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("configuration: relay.train.schedule: " + e.getMessage(), e);
        }
    }

    /**
     * A number, or auto: the most microbatches up to {@link #AUTO_MICROBATCHES} that divide the batch into microbatches
     * whose sequences split evenly over the replicas (1 where none does, which {@link #validate} then explains).
     */
    private static int microbatches(Config c) {
        if (!c.getString("microbatches").equals("auto")) return c.getInt("microbatches");
        int batch = c.getInt("batch"), replicas = c.getInt("replicas");
        for (int m = AUTO_MICROBATCHES; m > 1; m--) {
            if (batch % m == 0 && batch / m % Math.max(1, replicas) == 0) return m;
        }
        return 1;
    }

    /** auto ({@link SnapshotPace#AUTO}: as often as the measured cost allows), 0 (off) or a number of steps. */
    private static int threadsPerDevice(Config c) {
        String v = c.getString("threads-per-device");
        if (v.equals("auto")) return PipelineConfig.Execution.THREADS_AUTO;
        try {
            int n = Integer.parseInt(v);
            if (n >= 1) return n;
        } catch (NumberFormatException e) {
            // Said below.
        }
        throw new IllegalArgumentException("configuration: relay.train.threads-per-device must be auto (each node's cores ÷ its devices) "
                + "or a number ≥ 1, not '" + v + "'");
    }

    private static int snapshotEvery(Config c) {
        String v = c.getString("snapshot-every");
        if (v.equals("auto")) return SnapshotPace.AUTO;
        try {
            int n = Integer.parseInt(v);
            if (n >= 0) return n;
        } catch (NumberFormatException e) {
            // Said below.
        }
        throw new IllegalArgumentException("configuration: relay.train.snapshot-every must be auto, 0 (off) or a number of steps, not '" + v + "'");
    }

    private static boolean flag(Config c, String key) {
        return switch (c.getString(key)) {
            case "true", "on", "yes" -> true;
            case "false", "off", "no" -> false;
            default -> throw new IllegalArgumentException("configuration: relay.train." + key + " must be true or false, not '"
                    + c.getString(key) + "'");
        };
    }

    private static UpdateMode mode(Config c) {
        try {
            return UpdateMode.parse(c.getString("mode"));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("configuration: relay.train.mode " + e.getMessage(), e);
        }
    }

    private static void require(boolean ok, String key, String why) {
        if (!ok) throw new IllegalArgumentException("configuration: relay.train." + key + " " + why);
    }

    private static boolean finite(double v) {
        return Double.isFinite(v);
    }

    private void validate() {
        OptimizerPart o = optimizer;
        RunPart r = run;
        PipelinePart p = pipeline;
        require(!model.name().isBlank(), "model", "must name a preset or a model directory");
        require(!r.data().isBlank(), "data", "must name a corpus");
        require(r.steps() >= 1, "steps", "must be ≥ 1, not " + r.steps());
        require(r.batch() >= 1, "batch", "must be ≥ 1, not " + r.batch());
        require(r.seq() >= 2, "seq", "must be ≥ 2, not " + r.seq());
        require(p.microbatches() >= 1 && r.batch() % p.microbatches() == 0, "microbatches", "must divide batch " + r.batch()
                + ", not " + p.microbatches());
        require(p.devices() >= 1, "devices", "must be ≥ 1, not " + p.devices());
        require(p.nodes() >= 1, "nodes", "must be ≥ 1 (1: this JVM alone), not " + p.nodes());
        require(p.replicas() >= 1, "replicas", "must be ≥ 1, not " + p.replicas());
        require(p.replicas() == 1 || o.method().inPipeline(), "replicas", "are replicas of the pipeline, which " + o.method().key()
                + " does not run in");
        require(r.batch() % p.microbatches() != 0 || (r.batch() / p.microbatches()) % p.replicas() == 0, "replicas", "must divide each "
                + "microbatch's " + r.batch() / Math.max(1, p.microbatches()) + " sequences (batch ÷ microbatches), not " + p.replicas());
        require(p.nodes() == 1 || p.devices() * p.replicas() >= p.nodes() - 1, "nodes", "is " + p.nodes() + ": its " + (p.nodes() - 1)
                + " worker nodes need at least as many devices (relay.train.devices × replicas is " + p.devices() * p.replicas() + ")");
        require(p.nodes() == 1 || o.method().inPipeline(), "nodes", "spans JVMs only for the methods that run in the pipeline, not "
                + o.method().key());
        require(finite(o.lr()) && o.lr() > 0, "lr", "must be a finite number > 0 or auto, not " + o.lr());
        require(o.warmup() >= 0, "warmup", "must be ≥ 0, not " + o.warmup());
        require(finite(o.weightDecay()) && o.weightDecay() >= 0, "weight-decay", "must be ≥ 0, not " + o.weightDecay());
        Adam a = o.adam();
        require(a.beta1() >= 0 && a.beta1() < 1, "beta1", "must be in [0, 1), not " + a.beta1());
        require(a.beta2() >= 0 && a.beta2() < 1, "beta2", "must be in [0, 1), not " + a.beta2());
        require(finite(a.eps()) && a.eps() > 0, "eps", "must be > 0, not " + a.eps());
        require(o.lisa().gamma() >= 0, "lisa.gamma", "must be ≥ 0 (0 turns LISA off), not " + o.lisa().gamma());
        require(o.lisa().period() >= 1, "lisa.period", "must be ≥ 1, not " + o.lisa().period());
        LowRank l = o.lowRank();
        require(l.rank() >= 1, "rank", "must be ≥ 1, not " + l.rank());
        require(l.rsoPeriod() >= 1, "rso-period", "must be ≥ 1, not " + l.rsoPeriod());
        require(l.galoreGap() >= 1, "galore.gap", "must be ≥ 1, not " + l.galoreGap());
        require(finite(l.galoreScale()) && l.galoreScale() > 0, "galore.scale", "must be > 0, not " + l.galoreScale());
        require(finite(l.loraAlpha()) && l.loraAlpha() > 0, "lora.alpha", "must be > 0, not " + l.loraAlpha());
        require(r.validationFraction() > 0 && r.validationFraction() < 0.5, "validation-fraction", "must be in (0, 0.5), not "
                + r.validationFraction());
        require(r.evalEvery() >= 1, "eval-every", "must be ≥ 1, not " + r.evalEvery());
        require(r.evalSequences() >= 1, "eval-sequences", "must be ≥ 1, not " + r.evalSequences());
        require(r.checkpointEvery() >= 1, "checkpoint-every", "must be ≥ 1, not " + r.checkpointEvery());
        require(r.keepCheckpoints() >= 0, "keep-checkpoints", "must be ≥ 0 (0 keeps them all), not " + r.keepCheckpoints());
        require(r.restarts() >= 0, "restarts", "must be ≥ 0, not " + r.restarts());
        require(p.traceSteps() >= 0, "trace-steps", "must be ≥ 0 (0 turns tracing off), not " + p.traceSteps());
        require(!p.stepTimeout().isNegative() && !p.stepTimeout().isZero(), "step-timeout", "must be > 0, not " + p.stepTimeout());
        require(!Files.exists(Path.of(r.out())) || Files.isDirectory(Path.of(r.out())), "out",
                "must be a directory for the runs; " + r.out() + " is a file");
        require(!o.clipping().byNorm() || p.mode() == UpdateMode.EXACT || p.microbatches() == 1 || !o.method().inPipeline(), "clip-norm",
                "in eager mode needs one microbatch per step (each microbatch is its own update); use mode=exact or microbatches=1");
    }
}
