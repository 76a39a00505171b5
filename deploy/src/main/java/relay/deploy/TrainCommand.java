package relay.deploy;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import relay.deploy.train.Checkpoint;
import relay.deploy.train.KnownSettings;
import relay.deploy.train.TrainConfig;
import relay.deploy.train.TrainingRun;
import relay.optimizers.Method;

@Command(name = "train", mixinStandardHelpOptions = true,
        description = "Trains or fine-tunes a model through the block-actor pipeline (classic SGD, which holds every gradient, on the "
                + "plain loop). With no arguments: a small LLaMA-style model on the shipped King James Bible, AdaLomo in backward "
                + "with LISA.")
final class TrainCommand implements Callable<Integer> {
    @Option(names = "--config", description = "a HOCON file of settings over the defaults: full paths (relay.train { … }, relay.cluster "
            + "{ … }) or bare relay.train keys, as a run's own config.conf has them")
    Path config;

    @Option(names = "--resume", description = "a run directory (its newest complete checkpoint) or one of its checkpoints: "
            + "goes on with the run's own settings, in its directory; key=value arguments may change how it goes on (e.g. steps)")
    Path resume;

    @Option(names = "--run", description = "this run's directory: a new run there, or, once it holds a checkpoint, the run resumed "
            + "from its newest one — the same command goes on after a preemption (a requeued batch job)")
    Path run;

    @Option(names = "--model", description = "a preset or a Hugging Face model directory to fine-tune")
    String model;

    @Option(names = "--data", description = "a text or JSONL corpus (optionally .gz)")
    String data;

    @Option(names = "--optimizer", description = "the training method (below)")
    String optimizer;

    @Option(names = "--steps", description = "training steps")
    Integer steps;

    @Option(names = "--out", description = "where run directories go (default runs)")
    Path out;

    @Parameters(description = "settings as key=value under relay.train, e.g. lr=0.005 lisa.gamma=2; a key starting with relay. is a full "
            + "path, e.g. relay.cluster.port=25520")
    List<String> overrides = new ArrayList<>();

    /** The methods, for the help's footer: name, whether it runs in the pipeline, what it does. */
    static String methods() {
        StringBuilder s = new StringBuilder("Methods (--optimizer):%n");
        for (Method m : Method.values()) {
            s.append(String.format("  %-12s %-9s %s (lr auto: %s)%%n", m.key(), m.inPipeline() ? "pipeline" : "loop", m.description(),
                    m.defaultLearningRate()));
        }
        return s.toString();
    }

    /** Settings in layers: the run's own config.conf under them when resuming (its start), then the --config file, flags and key=value. */
    record Resolved(Config original, Config settings) {}

    Resolved resolve(Path from) {
        Config c = ConfigFactory.load();
        Config original = null;
        if (from != null) {
            // Which checkpoint is refused and why is told once the run starts from the one it uses.
            Path checkpoint = Checkpoint.locate(from, refused -> { }), settings = Checkpoint.run(checkpoint).resolve("config.conf");
            if (!Files.isRegularFile(settings)) {
                throw new IllegalArgumentException(checkpoint + " is not in a run directory (no " + settings + "): a resumed run needs "
                        + "its settings; to start a new run from these weights, use --model " + checkpoint);
            }
            c = layer(settings, "relay.train", c);
            original = TrainConfig.absolutePaths(c.resolve());
        }
        if (config != null) c = layer(config, null, c);
        Config given = ConfigFactory.empty();
        for (String o : overrides) {
            int eq = o.indexOf('=');
            if (eq <= 0) throw new IllegalArgumentException("'" + o + "' is not key=value");
            try {
                String key = o.substring(0, eq).trim();
                given = KnownSettings.argument(key.startsWith("relay.") ? key : "relay.train." + key, o.substring(eq + 1), o).withFallback(given);
            } catch (ConfigException e) {
                throw new IllegalArgumentException("'" + o + "': " + e.getMessage(), e);
            }
        }
        c = given.withFallback(c);
        c = option(c, given, "--model", "model", model);
        c = option(c, given, "--data", "data", data);
        c = option(c, given, "--optimizer", "optimizer", optimizer);
        c = option(c, given, "--steps", "steps", steps);
        c = option(c, given, "--out", "out", out == null ? null : out.toString());
        try {
            return new Resolved(original, TrainConfig.absolutePaths(c.resolve()));
        } catch (ConfigException e) {
            throw new IllegalArgumentException("configuration: " + e.getMessage(), e);
        }
    }

    /**
     * An option over the settings; the same setting given as key=value too must say the same (paths compared as the
     * files they name), or neither would be sure to win.
     */
    private static Config option(Config c, Config given, String option, String key, Object value) {
        if (value == null) return c;
        String path = "relay.train." + key;
        if (given.hasPath(path)) {
            String other = given.getValue(path).unwrapped().toString();
            boolean same = value instanceof Integer ? other.equals(value.toString())
                    : key.equals("optimizer") ? other.equals(value) : Inputs.path(other).equals(Inputs.path(value.toString()));
            if (!same) throw new IllegalArgumentException(option + " " + value + " and " + key + "=" + other + " disagree: give one");
        }
        return c.withValue(path, ConfigValueFactory.fromAnyRef(value));
    }

    /** What to resume: --resume, or a --run directory that already holds a checkpoint; null for a new run. */
    private Path resumeFrom() {
        if (resume != null && run != null) throw new IllegalArgumentException("--resume and --run: give one");
        if (run != null) {
            Inputs.writableDirectory(run, "--run");
            return Checkpoint.any(run) ? run : null;
        }
        return resume;
    }

    /**
     * A settings file over the settings below it: under {@code under}, or for a --config file (under null) where it
     * says — full paths (relay.train { … }), or bare relay.train keys as a run's own config.conf has them.
     */
    private static Config layer(Path file, String under, Config below) {
        if (!Files.isRegularFile(file)) throw new IllegalArgumentException(file + ": no such config file");
        Config c;
        try {
            c = ConfigFactory.parseFile(file.toFile());
        } catch (ConfigException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
        }
        if (under == null && !c.isEmpty() && !c.hasPath("relay")) under = "relay.train";
        Config placed = under == null ? c : c.atPath(under);
        KnownSettings.check(placed, file.toString());
        return placed.withFallback(below);
    }

    @Override
    public Integer call() throws Exception {
        Path from = resumeFrom();
        Resolved r = resolve(from);
        TrainConfig c = TrainConfig.from(r.settings());
        if (run != null && from != null && Checkpoint.finished(from, c.run().steps())) {
            // A requeued job whose run had already finished: done, not an error (exit 2 would fail the job).
            System.out.println(run + " has finished its " + c.run().steps() + " steps; nothing to do (raise steps=… to train on)");
            return 0;
        }
        if (r.original() != null) TrainConfig.checkResume(r.original(), r.settings());
        TrainingRun.run(c, r.settings(), System.out, from, run);
        return 0;
    }
}
