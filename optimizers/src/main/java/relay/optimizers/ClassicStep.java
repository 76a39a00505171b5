package relay.optimizers;

import relay.stages.layers.Parameter;
import relay.stages.model.Model;
import relay.stages.tensor.Tensor;
import relay.stages.train.Batch;
import relay.stages.train.GradientAccumulator;
import relay.stages.train.TrainingMethod;

/**
 * The classic trainer: every gradient is held for the whole step (summed over microbatches), then clipped
 * and applied parameter by parameter. The memory reference the in-backward methods are compared with.
 */
public final class ClassicStep implements TrainingMethod {
    private final UpdateRule rule;
    private final Schedule schedule;
    private final Clipping clipping;
    private GradientAccumulator grads = new GradientAccumulator();
    private float lr;

    public ClassicStep(UpdateRule rule, Schedule schedule, Clipping clipping) {
        this.rule = rule;
        this.schedule = schedule;
        this.clipping = clipping;
    }

    @Override
    public void beginStep(int step) {
        lr = schedule.at(step);
    }

    @Override
    public double microbatch(Model model, Batch b, float gradScale) {
        return model.forwardBackward(b.inputs(), b.targets(), b.batch(), b.seq(), gradScale, grads);
    }

    @Override
    public void endStep() {
        float factor = 1f;
        if (clipping.byNorm()) {
            double sq = 0;
            for (Parameter p : grads.parameters()) sq += p.value().device().sumOfSquares(grads.gradient(p));
            factor = clipping.factor(Math.sqrt(sq));
        }
        for (Parameter p : grads.parameters()) {
            Tensor g = grads.gradient(p);
            if (factor != 1f) g.device().scale(g, factor);
            if (clipping.byValue()) g.device().clamp(g, clipping.value());
            rule.apply(p, g, lr);
        }
        grads.close();
        grads = new GradientAccumulator();
    }

    @Override
    public void close() {
        grads.close();
        rule.close();
    }
}
