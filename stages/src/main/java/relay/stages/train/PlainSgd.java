package relay.stages.train;

import relay.stages.layers.Parameter;
import relay.stages.model.Model;

/** Classic SGD: every gradient is summed over the step's microbatches, then p −= lr·g at the step's end. */
public final class PlainSgd implements TrainingMethod {
    private final float learningRate;
    private GradientAccumulator grads = new GradientAccumulator();

    public PlainSgd(float learningRate) {
        this.learningRate = learningRate;
    }

    @Override
    public double microbatch(Model model, Batch b, float gradScale) {
        return model.forwardBackward(b.inputs(), b.targets(), b.positions(), b.batch(), b.seq(), gradScale, Model.Sinks.all(grads));
    }

    @Override
    public void endStep() {
        for (Parameter p : grads.parameters()) p.value().device().axpy(-learningRate, grads.gradient(p), p.value());
        grads.close();
        grads = new GradientAccumulator();
    }

    @Override
    public void close() {
        grads.close();
    }
}
