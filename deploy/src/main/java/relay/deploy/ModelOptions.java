package relay.deploy;

import java.util.ArrayList;
import picocli.CommandLine.Option;
import relay.stages.model.ModelConfig;

/**
 * Which model, and the shape of a batch. A command with other defaults builds its instance with them: picocli
 * takes an instance's values as the defaults it shows.
 */
final class ModelOptions implements CheckedOptions {
    @Option(names = "--model", description = "a preset (${COMPLETION-CANDIDATES}) or a config.json / model directory; default ${DEFAULT-VALUE}",
            completionCandidates = Presets.class)
    String model;

    @Option(names = "--batch", description = "sequences per step (default ${DEFAULT-VALUE})")
    int batch;

    @Option(names = "--seq", description = "tokens per sequence (default ${DEFAULT-VALUE})")
    int seq;

    private ModelConfig config;

    ModelOptions() {
        this("gpt2-124m", 4, 256);
    }

    ModelOptions(String model, int batch, int seq) {
        this.model = model;
        this.batch = batch;
        this.seq = seq;
    }

    static final class Presets extends ArrayList<String> {
        Presets() {
            super(ModelConfig.PRESETS);
        }
    }

    @Override
    public void check() {
        config();
    }

    /** The model's config, checked against the batch shape; read once (a model directory's config.json), when first asked. */
    ModelConfig config() {
        if (config != null) return config;
        Inputs.require(batch >= 1, "--batch", "≥ 1", batch);
        Inputs.require(seq >= 1, "--seq", "≥ 1", seq);
        ModelConfig cfg = ModelConfig.named(model);
        Inputs.require(seq <= cfg.maxPositions(), "--seq", "at most the model's " + cfg.maxPositions() + " positions", seq);
        config = cfg;
        return cfg;
    }
}
