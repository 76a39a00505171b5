package relay.deploy;

import picocli.CommandLine.Option;
import relay.stages.model.Precision;
import relay.stages.tensor.DType;

/**
 * {@code --dtype}: how a model's weights and activations are stored, float32 or bfloat16. Math runs in float32
 * either way, and gradients and optimizer state stay float32. A command with another default builds its instance
 * with it: picocli takes an instance's value as the default it shows.
 */
final class DTypeOption implements CheckedOptions {
    @Option(names = "--dtype", paramLabel = "f32|bf16", description = "storage of the weights and activations; gradients and optimizer "
            + "state stay float32 (default ${DEFAULT-VALUE})")
    String value;

    DTypeOption() {
        this(DType.F32);
    }

    DTypeOption(DType dtype) {
        this.value = dtype.key();
    }

    @Override
    public void check() {
        dtype();
    }

    DType dtype() {
        return Inputs.parsed("--dtype", () -> DType.parse(value));
    }

    /** Weights and activations both in the dtype. */
    Precision precision() {
        return Precision.of(dtype());
    }
}
