package relay.actors;

import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import relay.optimizers.Clipping;
import relay.optimizers.Schedule;
import relay.optimizers.Training;
import relay.optimizers.UpdateRule;
import relay.stages.layers.GradientSink;
import relay.stages.layers.Parameter;
import relay.stages.tensor.Bf16;
import relay.stages.tensor.Device;
import relay.stages.tensor.Tensor;
import relay.stages.train.GradientAccumulator;

/**
 * What one stage does with its weight gradients during a pass. In a norm pass it sums them over the step
 * and reports their squared norm; in the updating pass it scales them by the clip factor, clips by value
 * and applies its rule — at once (eager) or summed over the step at the stage's last backward (exact).
 * A tied matrix's gradient is always summed over the step: it is updated once, by the embedding stage,
 * with the head's part added. Gradients of parameters the method does not update (LoRA's base weights and
 * norms, for example) are dropped; a stage with none to update gets no sink, so it computes none.
 */
final class StageOptimizer implements AutoCloseable {
    private final UpdateRule rule;
    private final Predicate<Parameter> updates;
    private final boolean updatesAny;
    private final Schedule schedule;
    private final Clipping clipping;
    private final UpdateMode mode;
    private final Parameter tied;
    private final TraceRecorder trace;
    /** Keys the stochastic rounding of bfloat16 weights' updates, with the step and the parameter. */
    private final long seed;
    private GradientAccumulator sums = new GradientAccumulator();
    private GradientAccumulator tiedSum = new GradientAccumulator();

    /**
     * @param training   the method's rule for this stage and the parameters it updates
     * @param parameters every parameter the stage's backward may hand out a gradient for
     * @param tied       this stage's replica of a tied matrix, or null
     * @param trace      where each update's span goes
     * @param seed       the run's seed, keying the stochastic rounding of bfloat16 weights
     */
    StageOptimizer(Training training, List<Parameter> parameters, Schedule schedule, Clipping clipping, UpdateMode mode, Parameter tied,
                   TraceRecorder trace, long seed) {
        this.seed = seed;
        this.rule = training.rule();
        this.updates = training.updates();
        this.updatesAny = parameters.stream().anyMatch(updates);
        this.schedule = schedule;
        this.clipping = clipping;
        this.mode = mode;
        this.tied = tied;
        this.trace = trace;
    }

    /** Whether a backward of this pass applies its gradients at once (eager mode's updating pass). */
    boolean updatesEachBackward(Position pos) {
        return mode == UpdateMode.EAGER && pos.pass() == Pass.TRAIN;
    }

    /**
     * The sink for one microbatch's backward in the given pass, or null when the stage updates nothing (no
     * weight gradient is computed then); each weight gradient it takes is an "update" span.
     */
    GradientSink sink(Position pos) {
        if (!updatesAny) return null;
        GradientSink inner = untraced(pos);
        return new GradientSink() {
            @Override
            public void accept(Parameter p, Tensor g) {
                if (!updates.test(p)) return;
                long t0 = System.nanoTime();
                inner.accept(p, g);
                trace.span("update", t0, System.nanoTime(), pos);
            }

            @Override
            public Tensor sumFor(Parameter p) {
                return updates.test(p) ? inner.sumFor(p) : null;
            }
        };
    }

    /** Whether a tied matrix's gradient parts are exchanged at the end of a pass: there is one, and the method updates it. */
    boolean exchangesTied() {
        return tied != null && updates.test(tied);
    }

    private GradientSink untraced(Position pos) {
        GradientSink tiedPart = tiedSum;
        if (pos.pass() == Pass.NORM || mode == UpdateMode.EXACT) {
            GradientAccumulator s = sums;
            return new GradientSink() {
                @Override
                public void accept(Parameter p, Tensor g) {
                    (p == tied ? tiedPart : s).accept(p, g);
                }

                @Override
                public Tensor sumFor(Parameter p) {
                    return p == tied ? tiedPart.sumFor(p) : s.sumFor(p);
                }
            };
        }
        return new GradientSink() {
            @Override
            public void accept(Parameter p, Tensor g) {
                if (p == tied) {
                    tiedPart.accept(p, g);
                } else {
                    apply(p, g, pos);
                }
            }

            @Override
            public Tensor sumFor(Parameter p) {
                return p == tied ? tiedPart.sumFor(p) : null;
            }
        };
    }

    private void apply(Parameter p, Tensor g, Position pos) {
        Device d = g.device();
        if (pos.clip() != 1f) d.scale(g, pos.clip());
        if (clipping.byValue()) d.clamp(g, clipping.value());
        int part = updatesEachBackward(pos) ? pos.microbatch() : 0;
        p.update(Bf16.updateKey(seed, pos.step(), part, p.name()), () -> rule.apply(p, g, schedule.at((int) pos.step())));
    }

    /**
     * Ends the stage's share of a pass (its last backward is done): returns the squared norm of what was
     * summed in a norm pass, or applies the sums of an exact updating pass. The tied part stays for
     * {@link #takeTiedSum()} or {@link #finishTied}.
     */
    double finishPass(Position pos) {
        double sq = 0;
        for (Parameter p : sums.parameters()) {
            Tensor g = sums.gradient(p);
            if (pos.pass() == Pass.NORM) {
                sq += g.device().sumOfSquares(g);
            } else {
                apply(p, g, pos);
            }
        }
        sums.close();
        sums = new GradientAccumulator();
        return sq;
    }

    /** The head's summed tied gradient, handed over (it leaves this stage with the message). */
    Tensor takeTiedSum() {
        return tiedSum.take(tied);
    }

    /** The embedding adds a part of the head's tied gradient (rows from {@code row} on) to its own. */
    void addTiedPart(Tensor headPart, int row) {
        Tensor total = tiedSum.sumFor(tied);
        total.device().axpy(1f, headPart, total.rowRange(row, row + headPart.rows()));
    }

    /**
     * The embedding's end of a pass for the tied matrix, every part of the head's added: returns the total's
     * squared norm (norm pass) or applies it once (updating pass) and returns 0.
     */
    double finishTied(Position pos) {
        Tensor total = tiedSum.sumFor(tied);
        double sq = 0;
        if (pos.pass() == Pass.NORM) {
            sq = total.device().sumOfSquares(total);
        } else {
            apply(tied, total, pos);
        }
        tiedSum.close();
        tiedSum = new GradientAccumulator();
        return sq;
    }

    Map<String, float[]> export() {
        return rule.export();
    }

    /** Sets these parameters' state from a checkpoint's values (a resumed run). */
    void restore(List<Parameter> params, Map<String, float[]> values) {
        params.forEach(p -> rule.restore(p, values));
    }

    /** A block being frozen: its optimizer state goes. */
    void release(List<Parameter> params) {
        params.forEach(rule::release);
    }

    @Override
    public void close() {
        sums.close();
        tiedSum.close();
        rule.close();
    }
}
