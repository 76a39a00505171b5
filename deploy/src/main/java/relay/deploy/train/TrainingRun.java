package relay.deploy.train;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigRenderOptions;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import relay.actors.PipelineConfig;
import relay.actors.PipelineSchedule;
import relay.actors.Placement;
import relay.actors.UpdateMode;
import relay.actors.bench.StageCosts;
import relay.optimizers.Clipping;
import relay.optimizers.OptimizerSettings;
import relay.stages.data.Corpus;
import relay.stages.data.PackedDataset;
import relay.stages.io.HfModelDirectory;
import relay.stages.io.ModelFileException;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.text.BpeTrainer;
import relay.stages.text.Tokenizer;
import relay.stages.text.TokenizerJson;
import relay.stages.train.Batch;

/**
 * One training run from settings to a run directory: the resolved config, metrics.jsonl (a line per step),
 * trace.json, report.html, and checkpoints/step-N ({@link Checkpoint}: a Hugging Face model directory with
 * the tokenizer and everything a resumed run needs).
 */
public final class TrainingRun {
    /** Methods that run in the actor pipeline; the others change the model's layers and run on the plain loop. */
    static final Set<String> PIPELINE_OPTIMIZERS = Set.of("lomo", "adalomo", "adamw", "adamw-fused", "lisa");
    static final String END_OF_TEXT = "<|endoftext|>";

    public record Summary(Path directory, int steps, double trainLoss, double validationLoss, double seconds) {}

    private TrainingRun() {}

    /**
     * A new run — in {@code runDir}, or when that is null in a directory of its own under the settings' out —
     * or with {@code resumeFrom} (a checkpoint or a run directory, whose newest complete checkpoint is taken)
     * the continuation of one in its own directory: weights, optimizer state, data position, step and LISA's
     * draw come from the checkpoint, and the steps after it are done again exactly as they would have been.
     */
    public static Summary run(TrainSettings s, Config resolved, PrintStream out, Path resumeFrom, Path runDir) throws IOException {
        return run(s, resolved, out, resumeFrom, runDir, java.util.function.UnaryOperator.identity());
    }

    /**
     * The same, each engine passed through {@code wrap} (tests inject failures there). A failed step restarts
     * the run from its newest checkpoint (or from the start) up to {@code restarts} times, as a resume would:
     * a stage's crash or a timeout then leaves the result as if nothing had happened. A step that fails again
     * after a restart fails for a reason a restart does not cure (a diverged loss, a bug) and ends the run.
     */
    static Summary run(TrainSettings s, Config resolved, PrintStream out, Path resumeFrom, Path runDir,
                       java.util.function.UnaryOperator<Engine> wrap) throws IOException {
        int failedAt = -1;
        for (int restart = 1; ; restart++) {
            try {
                return attempt(s, resolved, out, resumeFrom, runDir, wrap);
            } catch (Failed f) {
                if (restart > s.restarts() || f.step() == failedAt) throw f;
                failedAt = f.step();
                resumeFrom = Checkpoint.any(f.run()) ? f.run() : null;
                runDir = f.run();
                out.printf("%s%nrestarting the run (%d of %d restarts)%n", f.getMessage(), restart, s.restarts());
                RunHistory.add(f.run(), "restarting (" + restart + " of " + s.restarts() + ")");
            }
        }
    }

    private static Summary attempt(TrainSettings s, Config resolved, PrintStream out, Path resumeFrom, Path runDir,
                                   java.util.function.UnaryOperator<Engine> wrap) throws IOException {
        long start = System.nanoTime();
        Path checkpoint = resumeFrom == null ? null : Checkpoint.locate(resumeFrom);
        Checkpoint.TrainerState resumed = checkpoint == null ? null : resumable(checkpoint, s);
        ModelSource src = ModelSource.open(checkpoint == null ? s.model() : checkpoint.toString());
        ModelConfig cfg = src.config();
        Tokenizer tokenizer = src.tokenizer();
        List<String> docs = corpus(s.data());
        if (tokenizer == null) tokenizer = trainTokenizer(s, cfg, docs, out);
        if (tokenizer.size() > cfg.vocabSize()) {
            throw new IllegalArgumentException("tokenizer has " + tokenizer.size() + " entries, the model only " + cfg.vocabSize());
        }
        PackedDataset data = dataset(s, tokenizer, docs, out);
        int first = resumed == null ? 0 : resumed.step();
        if (resumed != null) data.seek(resumed.data());
        // The run's directory appears once model, tokenizer and data are known to be usable.
        Path dir = checkpoint != null ? Checkpoint.run(checkpoint) : runDirectory(s, runDir);
        writeSettings(dir, resolved);

        OptimizerSettings os = new OptimizerSettings(s.lr(), s.weightDecay(), 0.9f, 0.999f, 1e-8f,
                new Clipping(s.clipValue(), s.clipNorm()), s.warmup(), s.steps(), Math.max(1, s.lisaGamma()), s.lisaPeriod(),
                8, 50, 50, 0.25f, 16f, s.seed());
        int mb = s.batch() / s.microbatches();
        List<Report.Point> points = new ArrayList<>();
        // LoRA's base never changes: a resumed LoRA run starts from the model it began with, and its adapters
        // come back with the optimizer state.
        Map<String, float[]> initial = checkpoint != null && s.optimizer().equals("lora") ? ModelSource.open(s.model()).weights()
                : src.weights();
        try (StopRequest stop = new StopRequest();
             Engine engine = wrap.apply(engine(s, cfg, os, initial, mb, first));
             CpuDevice evalDevice = new CpuDevice("eval", 1);
             Model evalModel = Model.initialize(cfg, evalDevice, s.seed());
             MetricsLog metrics = resumed == null ? MetricsLog.create(dir.resolve("metrics.jsonl"))
                     : MetricsLog.resume(dir.resolve("metrics.jsonl"), first, points)) {
            if (resumed != null) {
                restore(engine, checkpoint);
                out.printf("resuming %s at step %d of %d from %s%n", dir, first, s.steps(), checkpoint);
                RunHistory.add(dir, "resumed at step " + first + " of " + s.steps() + " from " + dir.relativize(checkpoint));
            } else {
                RunHistory.add(dir, "started: " + s.steps() + " steps of " + s.optimizer() + " on " + s.model());
            }
            out.println("training on the " + engine.describe());
            Progress progress = new Progress(first, s.steps(), out);
            double loss = Double.NaN, val = points.stream().mapToDouble(Report.Point::val).filter(v -> !Double.isNaN(v))
                    .reduce((a, b) -> b).orElse(Double.NaN);
            for (int step = first; step < s.steps(); step++) {
                List<Batch> mbs = new ArrayList<>();
                for (int j = 0; j < s.microbatches(); j++) mbs.add(data.next(mb));
                Engine.Step st = step(engine, mbs, step, s.steps(), dir);
                loss = st.loss();
                double tps = s.batch() * (double) s.seq() / st.seconds();
                boolean eval = (step + 1) % s.evalEvery() == 0 || step + 1 == s.steps();
                double stepVal = Double.NaN;
                if (eval) {
                    evalModel.load(engine.weights());
                    stepVal = val = validationLoss(evalModel, data, mb, s.evalSequences());
                }
                Map<String, Long> memory = new LinkedHashMap<>();
                st.memory().forEach((c, b) -> memory.put(c.key(), b));
                Report.Point point = new Report.Point(step + 1, loss, stepVal, os.schedule().at(step), tps, memory);
                metrics.append(point, st.seconds(), st.bubble());
                points.add(point);
                progress.update(step + 1, loss, val, tps);
                if (step + 1 == s.traceSteps()) engine.writeTrace(dir.resolve("trace.json"));
                boolean stopping = stop.requested() && step + 1 < s.steps();
                if ((step + 1) % s.checkpointEvery() == 0 || step + 1 == s.steps() || stopping) {
                    if (!eval) evalModel.load(engine.weights());
                    Checkpoint.write(dir, step + 1, evalModel, engine.optimizerState(), tokenizer, data, s);
                    Checkpoint.prune(dir, s.keepCheckpoints());
                }
                if (step + 1 == s.steps()) {
                    RunHistory.add(dir, String.format(Locale.ROOT, "finished: validation loss %.3f", val));
                }
                if (eval || step + 1 == s.steps()) report(dir, s, cfg, engine, points, start);
                if (stopping) {
                    RunHistory.add(dir, "stopped by a signal after step " + (step + 1) + " of " + s.steps());
                    report(dir, s, cfg, engine, points, start);
                    progress.done();
                    out.printf("stopped by a signal after step %d of %d; checkpoint %s; go on with: relay train --resume %s%n",
                            step + 1, s.steps(), Checkpoint.directory(dir, step + 1), dir);
                    return new Summary(dir, step + 1, loss, val, (System.nanoTime() - start) / 1e9);
                }
            }
            progress.done();
            if (first == 0 && s.traceSteps() > s.steps()) engine.writeTrace(dir.resolve("trace.json"));
            double seconds = (System.nanoTime() - start) / 1e9;
            out.printf(Locale.ROOT, "done in %.0f s: train loss %.3f, validation loss %.3f (perplexity %.1f); run directory %s%n",
                    seconds, loss, val, Math.exp(val), dir);
            return new Summary(dir, s.steps(), loss, val, seconds);
        }
    }

    /** A step whose failure names what failed and where the run can go on from. */
    public static final class Failed extends RuntimeException {
        private static final long serialVersionUID = 1L;
        private final int step;
        private final transient Path run;

        Failed(String message, Throwable cause, int step, Path run) {
            super(message, cause);
            this.step = step;
            this.run = run;
        }

        /** The step that failed, counted from 1. */
        int step() {
            return step;
        }

        Path run() {
            return run;
        }
    }

    /** Runs step (counted from 0); a failure says which step of how many, and where the run can go on from. */
    private static Engine.Step step(Engine engine, List<Batch> microbatches, int step, int steps, Path run) {
        try {
            return engine.step(microbatches);
        } catch (RuntimeException e) {
            String from;
            try {
                from = "; the newest checkpoint is " + Checkpoint.locate(run) + ": go on from it with relay train --resume " + run;
            } catch (IllegalArgumentException none) {
                from = "; the run has no checkpoint yet";
            }
            try {
                RunHistory.add(run, "step " + (step + 1) + " of " + steps + " failed: " + e.getMessage());
            } catch (IOException unwritable) {
                e.addSuppressed(unwritable);
            }
            throw new Failed("step " + (step + 1) + " of " + steps + " failed: " + e.getMessage() + from, e, step + 1, run);
        }
    }

    /** A byte-level BPE of the model's vocabulary size, trained on the corpus (a preset has no tokenizer of its own). */
    private static Tokenizer trainTokenizer(TrainSettings s, ModelConfig cfg, List<String> docs, PrintStream out) {
        if (cfg.vocabSize() < 257) {
            throw new IllegalArgumentException(s.model() + " has " + cfg.vocabSize() + " vocabulary entries and no tokenizer.json: a "
                    + "byte-level tokenizer trained on the corpus needs at least 257; use a model with more, or one with a tokenizer");
        }
        out.printf("training a byte-level BPE tokenizer of %d entries on %d documents...%n", cfg.vocabSize(), docs.size());
        long training = System.nanoTime();
        int every = Math.max(100, cfg.vocabSize() / 10 / 100 * 100);
        return BpeTrainer.train(docs, cfg.vocabSize(), List.of(END_OF_TEXT), merges -> {
            // Progress only for a tokenizer that takes a while (a large vocabulary).
            if (merges % every == 0 && System.nanoTime() - training > 5_000_000_000L) out.printf("  %d merges%n", merges);
        });
    }

    /** The corpus encoded and packed into sequences, with its validation split. */
    private static PackedDataset dataset(TrainSettings s, Tokenizer tokenizer, List<String> docs, PrintStream out) {
        Integer eot = tokenizer.specialTokens().get(END_OF_TEXT);
        int endOfText = eot != null ? eot : tokenizer.size() - 1;
        long encoding = System.nanoTime();
        // Progress only once encoding has taken a while: a large corpus, not the shipped one.
        PackedDataset data = PackedDataset.of(docs, tokenizer, endOfText, s.seq(), s.validationFraction(), s.seed(),
                percent -> {
                    if (System.nanoTime() - encoding > 5_000_000_000L) out.printf("tokenizing %s: %d%%%n", s.data(), percent);
                });
        out.printf("%s: %d tokens, %d training and %d validation sequences of %d%n", s.data(), data.tokens(),
                data.trainSequences(), data.validationSequences(), s.seq());
        return data;
    }

    /** config.conf, written aside and moved into place: a resumed run reads it, so a stop must not leave half of it. */
    private static void writeSettings(Path dir, Config resolved) throws IOException {
        Path settings = dir.resolve("config.conf"), written = dir.resolve("config.conf.tmp");
        Files.writeString(written, resolved.getConfig("relay.train").root()
                .render(ConfigRenderOptions.defaults().setOriginComments(false).setJson(false)), StandardCharsets.UTF_8);
        Files.move(written, settings, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    }

    /** Checks that a checkpoint is whole and belongs to a run with these settings, and that steps are left; returns its state. */
    private static Checkpoint.TrainerState resumable(Path checkpoint, TrainSettings s) {
        Checkpoint.verify(checkpoint);
        Checkpoint.TrainerState state = Checkpoint.trainerState(checkpoint);
        Path f = checkpoint.resolve(Checkpoint.TRAINER_STATE);
        if (!state.optimizer().equals(s.optimizer()) || state.seed() != s.seed()) {
            throw new ModelFileException(f, "written by a run with optimizer " + state.optimizer() + " and seed " + state.seed()
                    + ", not " + s.optimizer() + " and " + s.seed() + "; resume with the run's own settings");
        }
        if (state.step() >= s.steps()) {
            throw new IllegalArgumentException(checkpoint + " is at step " + state.step() + " and the run has " + s.steps()
                    + " steps: raise steps (e.g. steps=" + (state.step() + s.steps()) + ") to train on");
        }
        return state;
    }

    /** Sets the engine's optimizer state from the checkpoint; state that does not fit the run is an error naming the file. */
    private static void restore(Engine engine, Path checkpoint) {
        Path f = checkpoint.resolve(Checkpoint.OPTIMIZER_STATE);
        Map<String, float[]> state = Checkpoint.optimizerState(checkpoint);
        try {
            engine.restore(state);
        } catch (IllegalArgumentException e) {
            throw new ModelFileException(f, e.getMessage(), e);
        }
        // Only the names are compared; the engine's state is copied out once for them.
        java.util.Set<String> held = engine.optimizerState().keySet();
        if (!held.equals(state.keySet())) {
            throw new ModelFileException(f, "holds state for " + state.size() + " tensors, of which the run took "
                    + held.size() + ": it belongs to another model or optimizer");
        }
    }

    private static Engine engine(TrainSettings s, ModelConfig cfg, OptimizerSettings os, Map<String, float[]> initial, int mb,
                                 int firstStep) {
        if (!PIPELINE_OPTIMIZERS.contains(s.optimizer())) return new LoopEngine(cfg, s.seed(), s.optimizer(), os, initial, firstStep);
        int devices = Math.min(s.devices(), cfg.layers() + 2);
        Placement placement = Placement.balanced(StageCosts.measure(cfg, mb, s.seq()), devices);
        PipelineConfig pc = PipelineConfig.defaults(relay.optimizers.Method.named(s.optimizer()), s.lr())
                .with(s.mode().equals("exact") ? UpdateMode.EXACT : UpdateMode.EAGER, PipelineSchedule.parse(s.schedule()))
                .withSettings(os, s.lisaGamma() > 0 || s.optimizer().equals("lisa"))
                .withTraceSteps(s.traceSteps())
                .withStepTimeout(s.stepTimeout())
                .withFirstStep(firstStep);
        return new PipelineEngine(cfg, s.seed(), placement, pc, initial);
    }

    static double validationLoss(Model model, PackedDataset data, int batch, int maxSequences) {
        List<Batch> val = data.validation(batch, maxSequences);
        if (val.isEmpty()) val = data.validation(1, maxSequences);
        double sum = 0;
        for (Batch b : val) sum += model.loss(b.inputs(), b.targets(), b.batch(), b.seq());
        return sum / val.size();
    }

    static List<String> corpus(String data) {
        if (data.equals("builtin:kjv")) {
            InputStream in = TrainingRun.class.getResourceAsStream("/relay/corpus/kjv.txt.gz");
            if (in == null) throw new IllegalStateException("the built-in corpus is missing from the jar");
            return Corpus.read(Path.of("kjv.txt.gz"), in);
        }
        return Corpus.read(Path.of(data));
    }

    /** The given directory, or out/&lt;time&gt;-&lt;model&gt;-&lt;optimizer&gt;. */
    private static Path runDirectory(TrainSettings s, Path given) throws IOException {
        String name = Path.of(s.model()).getFileName().toString().replaceAll("[^A-Za-z0-9._-]", "_");
        String stamp = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss"));
        Path dir = given != null ? given : Path.of(s.out()).resolve(stamp + "-" + name + "-" + s.optimizer());
        Files.createDirectories(dir.resolve("checkpoints"));
        return dir;
    }

    private static void report(Path dir, TrainSettings s, ModelConfig cfg, Engine engine, List<Report.Point> points, long start)
            throws IOException {
        Map<String, String> facts = new LinkedHashMap<>();
        facts.put("model", s.model() + " (" + cfg.family().modelType() + ", " + String.format(Locale.ROOT, "%.1fM", cfg.parameters() / 1e6) + " parameters)");
        facts.put("data", s.data());
        facts.put("optimizer", s.optimizer() + (s.lisaGamma() > 0 && PIPELINE_OPTIMIZERS.contains(s.optimizer())
                ? ", LISA γ=" + s.lisaGamma() + " every " + s.lisaPeriod() + " steps" : "") + ", lr " + s.lr());
        facts.put("engine", engine.describe());
        facts.put("batch", s.batch() + " × " + s.seq() + " tokens in " + s.microbatches() + " microbatches, " + s.mode() + " mode, " + s.schedule());
        facts.put("steps", points.size() + " of " + s.steps());
        facts.put("elapsed", String.format(Locale.ROOT, "%.0f s", (System.nanoTime() - start) / 1e9));
        Report.write(dir.resolve("report.html"), "Relay training run " + dir.getFileName(), facts, points, engine.busy(),
                RunHistory.read(dir));
    }

    /** Where the model comes from: a preset (fresh weights) or a Hugging Face directory (its weights and tokenizer). */
    record ModelSource(ModelConfig config, Map<String, float[]> weights, Tokenizer tokenizer) {
        static ModelSource open(String model) {
            Path p = Checkpoint.modelDirectory(Path.of(model));
            if (!Files.isDirectory(p)) return new ModelSource(ModelConfig.named(model), null, null);
            try (CpuDevice d = new CpuDevice("load", 1); Model m = HfModelDirectory.load(p, d)) {
                Map<String, float[]> w = m.values();
                Path tok = p.resolve("tokenizer.json");
                return new ModelSource(m.config(), w, Files.isRegularFile(tok) ? TokenizerJson.read(tok) : null);
            }
        }
    }
}
