package relay.deploy;

import picocli.CommandLine.Option;
import relay.stages.model.Precision;
import relay.stages.tensor.DType;

/** {@code --dtype}: how the model's weights and activations are stored (the math runs in float32 either way). */
final class DTypeOption implements CheckedOptions {
    @Option(names = "--dtype", description = "f32 or bf16: how weights and activations are stored (default ${DEFAULT-VALUE})")
    String dtype = "f32";

    @Override
    public void check() {
        precision();
    }

    /** Weights and activations of the chosen dtype. */
    Precision precision() {
        try {
            return Precision.of(DType.parse(dtype));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--dtype: " + e.getMessage());
        }
    }
}
