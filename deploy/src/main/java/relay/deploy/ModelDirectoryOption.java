package relay.deploy;

import java.nio.file.Path;
import picocli.CommandLine.Option;
import relay.deploy.train.Checkpoint;

/** {@code --model DIR} of the commands that use a trained model: a model directory, a checkpoint, or a run's newest. */
final class ModelDirectoryOption {
    @Option(names = "--model", required = true, description = "a Hugging Face model directory with tokenizer.json: a checkpoint, or a run directory (its newest)")
    Path model;

    /** The model directory it names, checked to be one. */
    Path path() {
        return Checkpoint.modelDirectory(model);
    }
}
