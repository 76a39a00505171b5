package relay.optimizers;

import relay.stages.layers.Parameter;
import relay.stages.tensor.Tensor;

/** p ← (1 − lr·λ)·p − lr·g, with decoupled decay λ only on parameters that take it. No state: LOMO's rule. */
public final class Sgd implements UpdateRule {
    private final float weightDecay;

    public Sgd(float weightDecay) {
        this.weightDecay = weightDecay;
    }

    @Override
    public void apply(Parameter p, Tensor grad, float lr) {
        float decay = p.decay() ? weightDecay : 0f;
        p.value().device().axpby(-lr, grad, 1f - lr * decay, p.value());
    }

    @Override
    public boolean additive() {
        return weightDecay == 0f;
    }

    @Override
    public void release(Parameter p) {}

    @Override
    public void close() {}
}
