package relay.stages.layers;

import relay.stages.memory.Category;
import relay.stages.tensor.DType;
import relay.stages.tensor.Device;
import relay.stages.tensor.Tensor;

/**
 * A normalization over the last dimension: LayerNorm (gain and bias, GPT-2) or RMSNorm (gain only,
 * LLaMA), chosen by whether there is a bias. Backward needs the input and the per-row statistics, not the
 * output, so a block may free the output once the layers it feeds no longer need it.
 */
public final class Norm {
    private final Parameter gain;
    private final Parameter bias;
    private final float eps;

    public Norm(Parameter gain, Parameter bias, float eps) {
        this.gain = gain;
        this.bias = bias;
        this.eps = eps;
    }

    /** Per-row statistics for backward (mean is null for RMSNorm). */
    public record Stats(Tensor mean, Tensor rstd) implements AutoCloseable {
        @Override
        public void close() {
            if (mean != null) mean.close();
            rstd.close();
        }
    }

    /** The output (the caller owns it) and the statistics. */
    public record Out(Tensor y, Stats stats) {}

    public Out forward(Tensor x) {
        return forward(x, DType.F32);
    }

    /** The output stored as {@code dtype} (the statistics stay float32: a value per row). */
    public Out forward(Tensor x, DType dtype) {
        Device d = x.device();
        Tensor y = d.empty(Category.ACTIVATIONS, dtype, x.rows(), x.cols());
        Tensor rstd = d.empty(Category.ACTIVATIONS, x.rows());
        if (bias == null) {
            d.rmsNorm(x, gain.value(), eps, y, rstd);
            return new Out(y, new Stats(null, rstd));
        }
        Tensor mean = d.empty(Category.ACTIVATIONS, x.rows());
        d.layerNorm(x, gain.value(), bias.value(), eps, y, mean, rstd);
        return new Out(y, new Stats(mean, rstd));
    }

    /** dx += ∂L/∂x; then, unless the sink is null, the gain (and bias) gradients. */
    public void backward(Tensor dy, Tensor x, Stats stats, Tensor dx, GradientSink sink) {
        kernel(dy, x, stats, dx, null, null);
        if (sink != null) sink.weightWork(java.util.List.of(dy), (in, to) -> {
            GradientSink.Slot dg = GradientSink.slot(to, gain);
            GradientSink.Slot db = bias == null ? null : GradientSink.slot(to, bias);
            kernel(in.get(0), x, stats, null, dg.tensor(), db == null ? null : db.tensor());
            dg.done();
            if (db != null) db.done();
        });
    }

    /** The device's backward for this norm: dx unless null, the weight gradients unless null. */
    private void kernel(Tensor dy, Tensor x, Stats stats, Tensor dx, Tensor dGain, Tensor dBias) {
        if (bias == null) {
            x.device().rmsNormBackward(dy, x, gain.value(), stats.rstd(), dx, dGain);
        } else {
            x.device().layerNormBackward(dy, x, gain.value(), stats.mean(), stats.rstd(), dx, dGain, dBias);
        }
    }
}
