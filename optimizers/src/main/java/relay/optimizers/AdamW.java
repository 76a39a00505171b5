package relay.optimizers;

import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.tensor.Device;
import relay.stages.tensor.Tensor;

/**
 * AdamW (Loshchilov and Hutter): first and second moments per element, bias-corrected, with decoupled
 * weight decay. Each parameter counts its own steps, so a parameter whose state was released (LISA)
 * restarts with fresh moments and bias correction.
 */
public final class AdamW implements UpdateRule {
    private final float beta1;
    private final float beta2;
    private final float eps;
    private final float weightDecay;
    private final ParameterStates<Moments> states = new ParameterStates<>();

    public AdamW(float beta1, float beta2, float eps, float weightDecay) {
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
    }

    /** m and v of one tensor, and how many updates they have seen. */
    static final class Moments implements AutoCloseable {
        final Tensor m;
        final Tensor v;
        int steps;

        Moments(Device d, int[] shape) {
            m = d.allocate(Category.OPTIMIZER_STATE, shape);
            v = d.allocate(Category.OPTIMIZER_STATE, shape);
        }

        @Override
        public void close() {
            m.close();
            v.close();
        }
    }

    @Override
    public void apply(Parameter p, Tensor grad, float lr) {
        step(p, p.value(), grad, lr, p.decay() ? weightDecay : 0f);
    }

    /** One AdamW step on {@code target} with the moments kept under {@code key} (GaLore steps a projection). */
    void step(Parameter key, Tensor target, Tensor grad, float lr, float decay) {
        Moments s = states.get(key, k -> new Moments(target.device(), grad.shape()));
        s.steps++;
        float c1 = (float) (1 - Math.pow(beta1, s.steps)), c2 = (float) (1 - Math.pow(beta2, s.steps));
        target.device().adamw(target, grad, s.m, s.v, lr, beta1, beta2, eps, decay, c1, c2);
    }

    @Override
    public java.util.Map<String, float[]> export() {
        java.util.Map<String, float[]> out = new java.util.TreeMap<>();
        states.all().forEach((p, s) -> {
            out.put(p.name() + "/m", s.m.toArray());
            out.put(p.name() + "/v", s.v.toArray());
            out.put(p.name() + "/steps", new float[] {s.steps});
        });
        return out;
    }

    @Override
    public void restore(Parameter p, java.util.Map<String, float[]> exported) {
        restore(p, p.value().shape(), exported);
    }

    /** Restores the moments kept under {@code key}, of the given shape (GaLore's are the projection's). */
    void restore(Parameter key, int[] shape, java.util.Map<String, float[]> exported) {
        int steps = ParameterStates.count(exported, key, "steps");
        if (steps < 0) return;
        Moments s = states.get(key, k -> new Moments(key.value().device(), shape));
        s.m.copyFrom(ParameterStates.exported(exported, key, "m", s.m.size()));
        s.v.copyFrom(ParameterStates.exported(exported, key, "v", s.v.size()));
        s.steps = steps;
    }

    @Override
    public void release(Parameter p) {
        states.release(p);
    }

    @Override
    public void close() {
        states.close();
    }
}
