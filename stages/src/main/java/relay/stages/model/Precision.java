package relay.stages.model;

import relay.stages.tensor.DType;

/**
 * How a model's tensors are stored: its weights, and the activations its blocks keep for backward and pass to
 * each other (the residual stream between blocks and its gradient, which is also what crosses devices). Math runs
 * in float32 either way; gradients and optimizer state stay float32.
 */
public record Precision(DType weights, DType activations) {
    public static final Precision F32 = new Precision(DType.F32, DType.F32);
    public static final Precision BF16 = new Precision(DType.BF16, DType.BF16);

    public Precision {
        if (weights == null || activations == null) throw new IllegalArgumentException("a precision names both dtypes");
    }

    /** Weights of {@code dtype}, activations the same. */
    public static Precision of(DType dtype) {
        return new Precision(dtype, dtype);
    }
}
