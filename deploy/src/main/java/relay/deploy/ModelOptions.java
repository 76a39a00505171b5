package relay.deploy;

import java.util.ArrayList;
import picocli.CommandLine.Option;
import relay.stages.model.ModelConfig;

/** Which model, and the shape of a batch. */
final class ModelOptions {
    @Option(names = "--model", description = "a preset (${COMPLETION-CANDIDATES}) or a config.json / model directory; default ${DEFAULT-VALUE}",
            completionCandidates = Presets.class)
    String model = "gpt2-124m";

    @Option(names = "--batch", description = "sequences per step (default ${DEFAULT-VALUE})")
    int batch = 4;

    @Option(names = "--seq", description = "tokens per sequence (default ${DEFAULT-VALUE})")
    int seq = 256;

    static final class Presets extends ArrayList<String> {
        Presets() {
            super(ModelConfig.PRESETS);
        }
    }

    /** The model's config, checked against the batch shape. */
    ModelConfig config() {
        Inputs.require(batch >= 1, "--batch", "≥ 1", batch);
        Inputs.require(seq >= 1, "--seq", "≥ 1", seq);
        ModelConfig cfg = ModelConfig.named(model);
        if (seq > cfg.maxPositions()) {
            throw new IllegalArgumentException("--seq " + seq + " exceeds the model's " + cfg.maxPositions() + " positions");
        }
        return cfg;
    }
}
