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
 * norms, for example) are dropped; a stage with none to update gets no sink, so it computes none. With
 * several replicas of the pipeline the step's sums are settled through the stage's {@link ReplicaExchange}: each
 * parameter's sum is passed along the replicas to its owner, which updates it (or measures its norm) and sends its
 * new values back along them.
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
    /** This stage's group of replicas, or null with one replica: sums settle at once. */
    private final ReplicaExchange group;
    private double normSquared;
    /** The stage's own actions of the pass are done: its sums are settled or being settled. */
    private boolean finished;
    private GradientAccumulator sums = new GradientAccumulator();
    private GradientAccumulator tiedSum = new GradientAccumulator();

    /**
     * @param training   the method's rule for this stage and the parameters it updates
     * @param parameters every parameter the stage's backward may hand out a gradient for
     * @param tied       this stage's replica of a tied matrix, or null
     * @param trace      where each update's span goes
     * @param seed       the run's seed, keying the stochastic rounding of bfloat16 weights
     * @param group      the stage's exchange with its other replicas, or null (one replica)
     */
    StageOptimizer(Training training, List<Parameter> parameters, Schedule schedule, Clipping clipping, UpdateMode mode, Parameter tied,
                   TraceRecorder trace, long seed, ReplicaExchange group) {
        this.seed = seed;
        this.group = group;
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
        // With replicas an eager backward's gradients are summed too, to be settled with the other replicas' at its end.
        if (pos.pass() == Pass.NORM || mode == UpdateMode.EXACT || group != null) {
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

    /** A new pass: no squared norm yet, nothing pending between replicas. */
    void startPass() {
        normSquared = 0;
        finished = false;
        if (group != null) group.discard();
    }

    /**
     * Ends an action of eager mode's updating pass (a backward, a W, the head's forward with its fused backward) on a
     * stage with replicas: the gradients it summed are settled with the other replicas' — each owner updates and sends
     * its new values back — before the stage's next action ({@link #exchanging()}). Nothing to do otherwise: without
     * replicas they were applied as they came.
     */
    void settleAction(Position pos, Outbox out) {
        if (group != null && updatesEachBackward(pos)) settleSums(pos, out);
    }

    /** Whether an eager backward's sums are still being settled between the replicas: the stage's weights are not yet its next action's. */
    boolean exchanging() {
        return group != null && !group.settled();
    }

    /**
     * Ends the stage's own share of a pass (its last backward is done): settles what was summed — its squared norm in
     * a norm pass, its update in an exact updating pass — at once, or with several replicas once every replica's sum
     * is in ({@link #settled()}). The tied part stays for {@link #takeTiedSum()} or {@link #finishTied}.
     */
    void finishPass(Position pos, Outbox out) {
        settleSums(pos, out);
        finished = true;
    }

    private void settleSums(Position pos, Outbox out) {
        for (Parameter p : sums.parameters()) settle(p, sums.take(p), pos, out);
    }

    /** Settles one parameter's sum of this stage's share (handed over): here, or through the replicas' exchange. */
    private void settle(Parameter p, Tensor sum, Position pos, Outbox out) {
        if (group != null) {
            group.contribute(p, sum, pos, out, this::settleSummed);
            return;
        }
        try (sum) {
            settleSummed(p, sum, pos);
        }
    }

    /** A gradient summed over the whole step: its squared norm in a norm pass, else its update. */
    private void settleSummed(Parameter p, Tensor g, Position pos) {
        if (pos.pass() == Pass.NORM) {
            normSquared += g.device().sumOfSquares(g);
        } else {
            apply(p, g, pos);
        }
    }

    /** A part of another replica's partial sum, its readiness for one, or a part of an owner's new values. */
    void fromReplica(StageCommand m, Outbox out) {
        if (group == null) throw new IllegalStateException("a stage of one replica has no replicas to hear from");
        if (m instanceof StageCommand.ReplicaGradient g) group.take(g, out, this::settleSummed);
        if (m instanceof StageCommand.ReplicaReady r) group.take(r, out);
        if (m instanceof StageCommand.ReplicaWeights w) group.take(w, out);
    }

    /** Whether the pass's own actions are done and every sum settled: with replicas, once the owners have summed and sent back all. */
    boolean settled() {
        return finished && (group == null || group.settled());
    }

    /** This pass's squared gradient norm (a norm pass): of every parameter this stage settled (with replicas: owns). */
    double normSquared() {
        return normSquared;
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

    /** The embedding's end of a pass for the tied matrix, every part of the head's added: settled like any other sum. */
    void finishTied(Position pos, Outbox out) {
        settle(tied, tiedSum.take(tied), pos, out);
    }

    /** Frees what a failed pass left between replicas. */
    void discardPending() {
        if (group != null) group.discard();
    }

    Map<String, float[]> export() {
        return rule.export();
    }

    /** Whether this stage keeps p's state: every parameter's, or with replicas those this replica owns. */
    boolean keeps(Parameter p) {
        return group == null || group.owns(p);
    }

    /** Sets these parameters' state from a checkpoint's values (a resumed run). */
    void restore(List<Parameter> params, Map<String, float[]> values) {
        for (Parameter p : params) if (keeps(p)) rule.restore(p, values);
    }

    /** A block being frozen: its optimizer state goes. */
    void release(List<Parameter> params) {
        params.forEach(rule::release);
    }

    @Override
    public void close() {
        sums.close();
        tiedSum.close();
        if (group != null) group.close();
        rule.close();
    }
}
