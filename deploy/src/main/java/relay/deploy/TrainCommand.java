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
import relay.deploy.train.TrainSettings;
import relay.deploy.train.TrainingRun;

@Command(name = "train", mixinStandardHelpOptions = true,
        description = "Trains or fine-tunes a model through the block-actor pipeline (or the plain loop for rso, galore, lora, sgd). "
                + "With no arguments: a small LLaMA-style model on the shipped King James Bible, AdaLomo in backward with LISA.")
final class TrainCommand implements Callable<Integer> {
    @Option(names = "--config", description = "a HOCON file with relay.train settings, over the defaults")
    Path config;

    @Option(names = "--resume", description = "a run directory (its newest complete checkpoint) or one of its checkpoints: "
            + "goes on with the run's own settings, in its directory; key=value arguments may change some (e.g. steps)")
    Path resume;

    @Option(names = "--run", description = "this run's directory: a new run there, or, once it holds a checkpoint, the run resumed "
            + "from its newest one — the same command goes on after a preemption (a requeued batch job)")
    Path run;

    @Option(names = "--model", description = "a preset or a Hugging Face model directory to fine-tune")
    String model;

    @Option(names = "--data", description = "a text or JSONL corpus (optionally .gz)")
    String data;

    @Option(names = "--optimizer", description = "lomo, adalomo, adamw, lisa (pipeline); sgd, rso, galore, lora (plain loop)")
    String optimizer;

    @Option(names = "--steps", description = "training steps")
    Integer steps;

    @Option(names = "--out", description = "where run directories go (default runs)")
    String out;

    @Parameters(description = "settings as key=value under relay.train, e.g. lr=0.005 lisa.gamma=2")
    List<String> overrides = new ArrayList<>();

    /** The defaults, then the config.conf of the run being resumed (if any), then the --config file, then the flags and key=value arguments. */
    Config resolve(Path from) {
        Config c = ConfigFactory.load();
        if (from != null) {
            Path checkpoint = Checkpoint.locate(from), settings = Checkpoint.run(checkpoint).resolve("config.conf");
            if (!Files.isRegularFile(settings)) {
                throw new IllegalArgumentException(checkpoint + " is not in a run directory (no " + settings + "): a resumed run needs "
                        + "its settings; to start a new run from these weights, use --model " + checkpoint);
            }
            c = layer(settings, "relay.train", c);
        }
        if (config != null) c = layer(config, null, c);
        for (String o : overrides) {
            int eq = o.indexOf('=');
            if (eq <= 0) throw new IllegalArgumentException("'" + o + "' is not key=value");
            try {
                c = ConfigFactory.parseString("relay.train." + o.substring(0, eq).trim() + " = " + o.substring(eq + 1)).withFallback(c);
            } catch (ConfigException e) {
                throw new IllegalArgumentException("'" + o + "': " + e.getMessage(), e);
            }
        }
        if (model != null) c = c.withValue("relay.train.model", ConfigValueFactory.fromAnyRef(model));
        if (data != null) c = c.withValue("relay.train.data", ConfigValueFactory.fromAnyRef(data));
        if (optimizer != null) c = c.withValue("relay.train.optimizer", ConfigValueFactory.fromAnyRef(optimizer));
        if (steps != null) c = c.withValue("relay.train.steps", ConfigValueFactory.fromAnyRef(steps));
        if (out != null) c = c.withValue("relay.train.out", ConfigValueFactory.fromAnyRef(out));
        return c.resolve();
    }

    /** What to resume: --resume, or a --run directory that already holds a checkpoint; null for a new run. */
    private Path resumeFrom() {
        if (resume != null && run != null) throw new IllegalArgumentException("--resume and --run: give one");
        if (run != null) return Checkpoint.any(run) ? run : null;
        return resume;
    }

    private static Config layer(Path file, String under, Config below) {
        if (!Files.isRegularFile(file)) throw new IllegalArgumentException(file + ": no such config file");
        try {
            Config c = ConfigFactory.parseFile(file.toFile());
            return (under == null ? c : c.atPath(under)).withFallback(below);
        } catch (ConfigException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
        }
    }

    @Override
    public Integer call() throws Exception {
        Path from = resumeFrom();
        Config c = resolve(from);
        TrainSettings s = TrainSettings.from(c);
        relay.optimizers.Method.named(s.optimizer());
        TrainingRun.run(s, c, System.out, from, run);
        return 0;
    }
}
