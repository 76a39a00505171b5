package relay.deploy.train;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;

/** The settings of one training run, read from the resolved {@code relay.train} configuration. */
public record TrainSettings(String model, String data, String optimizer, float lr, int warmup,
                            float weightDecay, float clipValue, float clipNorm, int lisaGamma, int lisaPeriod, int steps,
                            int batch, int seq, int microbatches, int devices, String schedule, String mode,
                            java.time.Duration stepTimeout, int restarts,
                            double validationFraction, int evalEvery, int evalSequences, int checkpointEvery, int keepCheckpoints,
                            int traceSteps,
                            long seed, String out) {

    public static TrainSettings from(Config root) {
        Config c = root.getConfig("relay.train");
        rejectUnknown(c);
        try {
            TrainSettings s = new TrainSettings(c.getString("model"), c.getString("data"),
                    c.getString("optimizer"), learningRate(c), c.getInt("warmup"), (float) c.getDouble("weight-decay"),
                    (float) c.getDouble("clip-value"), (float) c.getDouble("clip-norm"), c.getInt("lisa.gamma"),
                    c.getInt("lisa.period"), c.getInt("steps"), c.getInt("batch"), c.getInt("seq"), c.getInt("microbatches"),
                    c.getInt("devices"), c.getString("schedule"), c.getString("mode"),
                    c.getDuration("step-timeout"), c.getInt("restarts"), c.getDouble("validation-fraction"),
                    c.getInt("eval-every"), c.getInt("eval-sequences"), c.getInt("checkpoint-every"), c.getInt("keep-checkpoints"),
                    c.getInt("trace-steps"),
                    c.getLong("seed"), c.getString("out"));
            s.validate();
            return s;
        } catch (ConfigException e) {
            throw new IllegalArgumentException("configuration: " + e.getMessage(), e);
        }
    }

    /** A misspelt setting would otherwise be ignored without a word: every key must be one the defaults have. */
    private static void rejectUnknown(Config c) {
        Config known = com.typesafe.config.ConfigFactory.defaultReference().getConfig("relay.train");
        java.util.List<String> unknown = c.entrySet().stream().map(java.util.Map.Entry::getKey)
                .filter(k -> !known.hasPathOrNull(k)).sorted().toList();
        if (!unknown.isEmpty()) {
            throw new IllegalArgumentException("configuration: unknown setting" + (unknown.size() > 1 ? "s " : " ")
                    + unknown.stream().map(k -> "relay.train." + k).collect(java.util.stream.Collectors.joining(", "))
                    + "; known: " + known.entrySet().stream().map(java.util.Map.Entry::getKey).sorted()
                    .collect(java.util.stream.Collectors.joining(", ")));
        }
    }

    /** A number, or "auto": a rate that suits the optimizer, a tenth of it when fine-tuning a model directory. */
    static float learningRate(Config c) {
        if (!c.getString("lr").equals("auto")) return (float) c.getDouble("lr");
        float scratch = switch (c.getString("optimizer")) {
            case "adalomo" -> 0.02f;
            case "lomo", "sgd" -> 0.3f;
            case "lora" -> 1e-2f;
            default -> 2e-3f;
        };
        boolean fineTuning = java.nio.file.Files.isDirectory(java.nio.file.Path.of(c.getString("model")));
        return fineTuning ? scratch / 10 : scratch;
    }

    private static void require(boolean ok, String key, String why) {
        if (!ok) throw new IllegalArgumentException("configuration: relay.train." + key + " " + why);
    }

    private void validate() {
        require(steps >= 1, "steps", "must be ≥ 1");
        require(batch >= 1 && seq >= 2, "batch/seq", "must be ≥ 1 and ≥ 2");
        require(microbatches >= 1 && batch % microbatches == 0, "microbatches", "must divide batch " + batch);
        require(devices >= 1, "devices", "must be ≥ 1");
        require(lr > 0, "lr", "must be > 0");
        require(validationFraction > 0 && validationFraction < 0.5, "validation-fraction", "must be in (0, 0.5)");
        require(evalEvery >= 1 && checkpointEvery >= 1, "eval-every/checkpoint-every", "must be ≥ 1");
        require(!stepTimeout.isNegative() && !stepTimeout.isZero(), "step-timeout", "must be > 0");
        require(restarts >= 0, "restarts", "must be ≥ 0");
        require(keepCheckpoints >= 0, "keep-checkpoints", "must be ≥ 0 (0 keeps them all)");
        require(lisaGamma >= 0 && lisaPeriod >= 1, "lisa", "gamma must be ≥ 0 and period ≥ 1");
        require(mode.equals("eager") || mode.equals("exact"), "mode", "must be eager or exact, not " + mode);
    }
}
