package relay.optimizers;

import relay.stages.layers.Parameter;
import relay.stages.model.Model;
import relay.stages.tensor.Bf16;
import relay.stages.tensor.Tensor;
import relay.stages.train.Batch;
import relay.stages.train.GradientAccumulator;

/**
 * The classic trainer: every gradient is held for the whole step (summed over microbatches), then clipped
 * and applied parameter by parameter. The memory reference the in-backward methods are compared with.
 */
public final class ClassicStep implements RuleMethod {
    private final UpdateRule rule;
    private final Schedule schedule;
    private final Clipping clipping;
    private final Model model;
    private final LisaPolicy lisa;
    private final long seed;
    private GradientAccumulator grads = new GradientAccumulator();
    private float lr;
    private int step;

    /** {@code seed} keys the stochastic rounding of bfloat16 weights' updates. */
    public ClassicStep(UpdateRule rule, Schedule schedule, Clipping clipping, long seed) {
        this(rule, schedule, clipping, null, null, seed);
    }

    /** With LISA: frozen blocks compute no weight gradient and hold no state. */
    public ClassicStep(UpdateRule rule, Schedule schedule, Clipping clipping, Model model, LisaPolicy lisa, long seed) {
        this.seed = seed;
        this.rule = rule;
        this.schedule = schedule;
        this.clipping = clipping;
        this.model = model;
        this.lisa = lisa;
    }

    @Override
    public void beginStep(int step) {
        this.step = step;
        lr = schedule.at(step);
        if (lisa != null) lisa.applyTo(model, step, rule);
    }

    @Override
    public double microbatch(Model m, Batch b, float gradScale) {
        int layers = m.blocks().size();
        return m.forwardBackward(b.inputs(), b.targets(), b.positions(), b.batch(), b.seq(), gradScale,
                stage -> stage >= 1 && stage <= layers && !m.blocks().get(stage - 1).trainable() ? null : grads);
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
            p.update(Bf16.updateKey(seed, step, 0, p.name()), () -> rule.apply(p, g, lr));
        }
        grads.close();
        grads = new GradientAccumulator();
    }

    @Override
    public UpdateRule rule() {
        return rule;
    }

    @Override
    public void close() {
        grads.close();
        rule.close();
    }
}
