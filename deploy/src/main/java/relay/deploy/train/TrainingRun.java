package relay.deploy.train;

import com.google.gson.Gson;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigRenderOptions;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.HexFormat;
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
import relay.stages.io.SafeTensors;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.text.BpeTrainer;
import relay.stages.text.Tokenizer;
import relay.stages.text.TokenizerJson;
import relay.stages.train.Batch;

/**
 * One training run from settings to a run directory: the resolved config, metrics.jsonl (a line per step
 * and per evaluation), trace.json, report.html, and checkpoints/step-N (a Hugging Face model directory
 * with the tokenizer, the trainer's state and a manifest of checksums written last).
 */
public final class TrainingRun {
    /** Methods that run in the actor pipeline; the others change the model's layers and run on the plain loop. */
    static final Set<String> PIPELINE_OPTIMIZERS = Set.of("lomo", "adalomo", "adamw", "adamw-fused", "lisa");
    static final String END_OF_TEXT = "<|endoftext|>";

    public record Summary(Path directory, int steps, double trainLoss, double validationLoss, double seconds) {}

    private TrainingRun() {}

    public static Summary run(TrainSettings s, Config resolved, PrintStream out) throws IOException {
        long start = System.nanoTime();
        Path dir = runDirectory(s);
        Files.writeString(dir.resolve("config.conf"), resolved.getConfig("relay.train").root()
                .render(ConfigRenderOptions.defaults().setOriginComments(false).setJson(false)), StandardCharsets.UTF_8);

        ModelSource src = ModelSource.open(s.model());
        ModelConfig cfg = src.config();
        List<String> docs = corpus(s.data());
        Tokenizer tokenizer = src.tokenizer();
        if (tokenizer == null) {
            out.printf("training a byte-level BPE tokenizer of %d entries on %d documents...%n", cfg.vocabSize(), docs.size());
            tokenizer = BpeTrainer.train(docs, cfg.vocabSize(), List.of(END_OF_TEXT), n -> { });
        }
        if (tokenizer.size() > cfg.vocabSize()) {
            throw new IllegalArgumentException("tokenizer has " + tokenizer.size() + " entries, the model only " + cfg.vocabSize());
        }
        Integer eot = tokenizer.specialTokens().get(END_OF_TEXT);
        int endOfText = eot != null ? eot : tokenizer.size() - 1;
        PackedDataset data = PackedDataset.of(docs, tokenizer, endOfText, s.seq(), s.validationFraction(), s.seed());
        out.printf("%s: %d tokens, %d training and %d validation sequences of %d%n", s.data(), data.tokens(),
                data.trainSequences(), data.validationSequences(), s.seq());

        OptimizerSettings os = new OptimizerSettings(s.lr(), s.weightDecay(), 0.9f, 0.999f, 1e-8f,
                new Clipping(s.clipValue(), s.clipNorm()), s.warmup(), s.steps(), Math.max(1, s.lisaGamma()), s.lisaPeriod(),
                8, 50, 50, 0.25f, 16f, s.seed());
        int mb = s.batch() / s.microbatches();
        try (Engine engine = engine(s, cfg, os, src.weights(), mb);
             CpuDevice evalDevice = new CpuDevice("eval", 1);
             Model evalModel = Model.initialize(cfg, evalDevice, s.seed());
             BufferedWriter metrics = Files.newBufferedWriter(dir.resolve("metrics.jsonl"), StandardCharsets.UTF_8)) {
            out.println("training on the " + engine.describe());
            Gson gson = new Gson();
            List<Report.Point> points = new ArrayList<>();
            Progress progress = new Progress(s.steps(), out);
            double loss = Double.NaN, val = Double.NaN;
            for (int step = 0; step < s.steps(); step++) {
                List<Batch> mbs = new ArrayList<>();
                for (int j = 0; j < s.microbatches(); j++) mbs.add(data.next(mb));
                Engine.Step st = engine.step(mbs);
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
                Map<String, Object> line = new LinkedHashMap<>();
                line.put("step", step + 1);
                line.put("loss", loss);
                if (eval) line.put("val_loss", stepVal);
                line.put("lr", os.schedule().at(step));
                line.put("tokens_per_s", tps);
                line.put("seconds", st.seconds());
                line.put("bubble", st.bubble());
                line.put("peak_bytes", memory);
                metrics.write(gson.toJson(line));
                metrics.newLine();
                metrics.flush();
                points.add(new Report.Point(step + 1, loss, stepVal, os.schedule().at(step), tps, memory));
                progress.update(step + 1, loss, val, tps);
                if (step + 1 == s.traceSteps()) engine.writeTrace(dir.resolve("trace.json"));
                if ((step + 1) % s.checkpointEvery() == 0 || step + 1 == s.steps()) {
                    if (!eval) evalModel.load(engine.weights());
                    checkpoint(dir, step + 1, evalModel, engine.optimizerState(), tokenizer, data, s);
                }
                if (eval || step + 1 == s.steps()) report(dir, s, cfg, engine, points, start);
            }
            progress.done();
            if (s.traceSteps() > s.steps()) engine.writeTrace(dir.resolve("trace.json"));
            double seconds = (System.nanoTime() - start) / 1e9;
            out.printf(Locale.ROOT, "done in %.0f s: train loss %.3f, validation loss %.3f (perplexity %.1f); run directory %s%n",
                    seconds, loss, val, Math.exp(val), dir);
            return new Summary(dir, s.steps(), loss, val, seconds);
        }
    }

    private static Engine engine(TrainSettings s, ModelConfig cfg, OptimizerSettings os, Map<String, float[]> initial, int mb) {
        if (!PIPELINE_OPTIMIZERS.contains(s.optimizer())) return new LoopEngine(cfg, s.seed(), s.optimizer(), os, initial);
        int devices = Math.min(s.devices(), cfg.layers() + 2);
        Placement placement = Placement.balanced(StageCosts.measure(cfg, mb, s.seq()), devices);
        PipelineConfig pc = PipelineConfig.defaults(s.optimizer(), s.lr())
                .with(s.mode().equals("exact") ? UpdateMode.EXACT : UpdateMode.EAGER, PipelineSchedule.parse(s.schedule()))
                .withSettings(os, s.lisaGamma() > 0 || s.optimizer().equals("lisa"))
                .withTraceSteps(s.traceSteps());
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

    private static Path runDirectory(TrainSettings s) throws IOException {
        String name = Path.of(s.model()).getFileName().toString().replaceAll("[^A-Za-z0-9._-]", "_");
        String stamp = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss"));
        Path dir = Path.of(s.out()).resolve(stamp + "-" + name + "-" + s.optimizer());
        Files.createDirectories(dir.resolve("checkpoints"));
        return dir;
    }

    /** A checkpoint directory; its manifest (file checksums) is written last, so a complete one has a manifest. */
    static void checkpoint(Path run, int step, Model model, Map<String, float[]> optimizerState, Tokenizer tokenizer,
                           PackedDataset data, TrainSettings s) throws IOException {
        Path dir = run.resolve("checkpoints").resolve("step-" + step);
        HfModelDirectory.save(model, dir);
        TokenizerJson.write(tokenizer, dir.resolve("tokenizer.json"));
        List<SafeTensors.Tensor32> moments = new ArrayList<>();
        optimizerState.forEach((name, v) -> moments.add(new SafeTensors.Tensor32(name, new int[] {v.length}, v)));
        SafeTensors.write(dir.resolve("optimizer.safetensors"), moments, Map.of("optimizer", s.optimizer()));
        Map<String, Object> state = new LinkedHashMap<>();
        state.put("step", step);
        state.put("data_epoch", data.position().epoch());
        state.put("data_index", data.position().index());
        state.put("optimizer", s.optimizer());
        state.put("lisa_gamma", s.lisaGamma());
        state.put("lisa_period", s.lisaPeriod());
        state.put("seed", s.seed());
        state.put("optimizer_state", "optimizer.safetensors: parameter/role -> values (" + optimizerState.size() + " tensors)");
        Files.writeString(dir.resolve("trainer_state.json"), new Gson().toJson(state), StandardCharsets.UTF_8);
        Map<String, String> sums = new LinkedHashMap<>();
        try (var files = Files.list(dir)) {
            for (Path f : files.sorted().toList()) sums.put(f.getFileName().toString(), sha256(f));
        }
        Files.writeString(dir.resolve("manifest.json"), new Gson().toJson(Map.of("step", step, "sha256", sums)), StandardCharsets.UTF_8);
    }

    private static String sha256(Path f) throws IOException {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            try (InputStream in = Files.newInputStream(f)) {
                byte[] buf = new byte[1 << 16];
                int n;
                while ((n = in.read(buf)) > 0) md.update(buf, 0, n);
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
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
        Report.write(dir.resolve("report.html"), "Relay training run " + dir.getFileName(), facts, points, engine.busy(), List.of());
    }

    /** Where the model comes from: a preset (fresh weights) or a Hugging Face directory (its weights and tokenizer). */
    record ModelSource(ModelConfig config, Map<String, float[]> weights, Tokenizer tokenizer) {
        static ModelSource open(String model) {
            Path p = Path.of(model);
            if (!Files.isDirectory(p)) return new ModelSource(ModelConfig.named(model), null, null);
            try (CpuDevice d = new CpuDevice("load", 1); Model m = HfModelDirectory.load(p, d)) {
                Map<String, float[]> w = m.values();
                Path tok = p.resolve("tokenizer.json");
                return new ModelSource(m.config(), w, Files.isRegularFile(tok) ? TokenizerJson.read(tok) : null);
            }
        }
    }
}
