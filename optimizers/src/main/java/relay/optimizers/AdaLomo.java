package relay.optimizers;

import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.tensor.Device;
import relay.stages.tensor.Tensor;

/**
 * AdaLomo (Lv et al. 2023, arXiv 2310.10195): an adaptive learning rate per element from a second moment
 * kept in factored form — row and column sums of g² for a matrix, O(rows + cols) state — with the
 * grouped update normalization:
 * <pre>
 *   β_t = 1 − t^c                    (c = decayRate, −0.8)
 *   R ← β_t·R + (1 − β_t)·rowsum(g² + ε₁),  C ← β_t·C + (1 − β_t)·colsum(g² + ε₁)
 *   V = R·C / ΣR,   U = g / √V,   Û = U / max(1, RMS(U) / d)
 *   θ ← (1 − η·λ)·θ − η·Û,   η = lr · max(ε₂, RMS(θ))
 * </pre>
 * Vectors keep an unfactored second moment.
 */
public final class AdaLomo implements UpdateRule {
    private final float decayRate;
    private final float eps1;
    private final float eps2;
    private final float clipThreshold;
    private final float weightDecay;
    private final ParameterStates<State> states = new ParameterStates<>();

    public AdaLomo(float decayRate, float eps1, float eps2, float clipThreshold, float weightDecay) {
        this.decayRate = decayRate;
        this.eps1 = eps1;
        this.eps2 = eps2;
        this.clipThreshold = clipThreshold;
        this.weightDecay = weightDecay;
    }

    /** The paper's defaults: c = −0.8, ε = (1e-30, 1e-3), d = 1. */
    public static AdaLomo defaults(float weightDecay) {
        return new AdaLomo(-0.8f, 1e-30f, 1e-3f, 1f, weightDecay);
    }

    static final class State implements AutoCloseable {
        final Tensor rows;
        final Tensor cols;
        final Tensor full;
        int steps;

        State(Device d, Tensor param) {
            boolean matrix = param.rank() == 2;
            rows = matrix ? d.allocate(Category.OPTIMIZER_STATE, param.rows()) : null;
            cols = matrix ? d.allocate(Category.OPTIMIZER_STATE, param.cols()) : null;
            full = matrix ? null : d.allocate(Category.OPTIMIZER_STATE, param.shape());
        }

        @Override
        public void close() {
            if (rows != null) rows.close();
            if (cols != null) cols.close();
            if (full != null) full.close();
        }
    }

    @Override
    public void apply(Parameter p, Tensor grad, float lr) {
        Tensor theta = p.value();
        Device d = theta.device();
        State s = states.get(p, k -> new State(d, theta));
        s.steps++;
        float beta = (float) (1 - Math.pow(s.steps, decayRate));
        // U = g/√V is computed in the gradient's own memory: no workspace the size of the parameter.
        Tensor u = grad;
        if (s.full == null) {
            d.factoredSecondMoment(grad, eps1, beta, s.rows, s.cols);
            d.factoredScale(grad, s.rows, s.cols, u);
        } else {
            d.secondMomentScale(grad, eps1, beta, s.full, u);
        }
        double rmsU = Math.sqrt(d.sumOfSquares(u) / u.size());
        double rmsTheta = Math.sqrt(d.sumOfSquares(theta) / theta.size());
        float eta = (float) (lr * Math.max(eps2, rmsTheta));
        float normalize = (float) Math.max(1.0, rmsU / clipThreshold);
        float decay = p.decay() ? weightDecay : 0f;
        d.axpby(-eta / normalize, u, 1f - eta * decay, theta);
    }

    @Override
    public java.util.Map<String, float[]> export() {
        java.util.Map<String, float[]> out = new java.util.TreeMap<>();
        states.all().forEach((p, s) -> {
            if (s.rows != null) out.put(p.name() + "/rows", s.rows.toArray());
            if (s.cols != null) out.put(p.name() + "/cols", s.cols.toArray());
            if (s.full != null) out.put(p.name() + "/v", s.full.toArray());
            out.put(p.name() + "/steps", new float[] {s.steps});
        });
        return out;
    }

    @Override
    public void restore(Parameter p, java.util.Map<String, float[]> exported) {
        int steps = ParameterStates.count(exported, p, "steps");
        if (steps < 0) return;
        State s = states.get(p, k -> new State(p.value().device(), p.value()));
        if (s.rows != null) s.rows.copyFrom(ParameterStates.exported(exported, p, "rows", s.rows.size()));
        if (s.cols != null) s.cols.copyFrom(ParameterStates.exported(exported, p, "cols", s.cols.size()));
        if (s.full != null) s.full.copyFrom(ParameterStates.exported(exported, p, "v", s.full.size()));
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
