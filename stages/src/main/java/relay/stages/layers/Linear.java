package relay.stages.layers;

import relay.stages.memory.Category;
import relay.stages.tensor.Device;
import relay.stages.tensor.Mat;
import relay.stages.tensor.Tensor;

/** y = x·Wᵀ + b with W stored [out, in] (torch's nn.Linear layout). */
public final class Linear {
    private final Parameter weight;
    private final Parameter bias;

    public Linear(Parameter weight, Parameter bias) {
        this.weight = weight;
        this.bias = bias;
    }

    public Parameter weight() {
        return weight;
    }

    public Parameter bias() {
        return bias;
    }

    public int in() {
        return weight.value().cols();
    }

    public int out() {
        return weight.value().rows();
    }

    public Tensor forward(Tensor x, Category category) {
        Tensor y = x.device().empty(category, x.rows(), out());
        forwardInto(x, y);
        return y;
    }

    public void forwardInto(Tensor x, Tensor y) {
        Device d = x.device();
        d.gemm(false, true, x.rows(), out(), in(), 1f, Mat.of(x), Mat.of(weight.value()), 0f, Mat.of(y));
        if (bias != null) d.addRowVector(y, bias.value());
    }

    /**
     * Writes dx = dy·W into {@code dx} (adds to it when {@code accumulate}), then, unless the sink is null,
     * hands out dW = dyᵀ·x and db = Σ dy. dx is computed first so a sink may update W in place.
     */
    public void backward(Tensor x, Tensor dy, Tensor dx, boolean accumulate, GradientSink sink) {
        Device d = x.device();
        d.gemm(false, false, dy.rows(), in(), out(), 1f, Mat.of(dy), Mat.of(weight.value()),
                accumulate ? 1f : 0f, Mat.of(dx));
        backwardWeights(x, dy, sink);
    }

    public void backwardWeights(Tensor x, Tensor dy, GradientSink sink) {
        if (sink == null) return;
        Device d = x.device();
        Tensor dw = d.empty(Category.GRADIENTS, out(), in());
        d.gemm(true, false, out(), in(), dy.rows(), 1f, Mat.of(dy), Mat.of(x), 0f, Mat.of(dw));
        GradientSink.emit(sink, weight, dw);
        if (bias != null) {
            Tensor db = d.empty(Category.GRADIENTS, out());
            d.sumRows(dy, db, false);
            GradientSink.emit(sink, bias, db);
        }
    }
}
