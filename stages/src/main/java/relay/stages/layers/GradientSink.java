package relay.stages.layers;

import relay.stages.tensor.Tensor;

/**
 * Receives weight gradients one parameter at a time, the moment each is complete. The gradient is freed
 * as soon as {@code accept} returns, so a sink that applies it at once (LOMO) keeps a block's gradient
 * memory at the size of one parameter. Backward is called with a {@code null} sink for a frozen block:
 * then no weight gradient is computed at all.
 */
@FunctionalInterface
public interface GradientSink {
    void accept(Parameter parameter, Tensor gradient);

    /** Hands {@code gradient} to {@code sink} and frees it afterwards, whatever the sink does. */
    static void emit(GradientSink sink, Parameter parameter, Tensor gradient) {
        try {
            sink.accept(parameter, gradient);
        } finally {
            gradient.close();
        }
    }
}
