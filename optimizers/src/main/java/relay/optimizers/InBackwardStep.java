package relay.optimizers;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;
import relay.stages.layers.GradientSink;
import relay.stages.layers.Linear;
import relay.stages.layers.Parameter;
import relay.stages.layers.TransformerBlock;
import relay.stages.memory.Category;
import relay.stages.model.Model;
import relay.stages.tensor.Bf16;
import relay.stages.tensor.DType;
import relay.stages.tensor.Tensor;
import relay.stages.train.Batch;

/**
 * LOMO's fused update: each weight gradient is applied by the rule the moment backward completes it and is
 * freed right after, so no gradient outlives its parameter's update. Clipping by value costs nothing extra;
 * clipping by global norm runs a first backward that only sums squared gradient norms, then the updating
 * one (LOMO's two passes; the norm is that of the microbatch being applied). With LISA, frozen blocks get
 * no sink — no weight gradient at all — and their optimizer state is released when they freeze.
 */
public final class InBackwardStep implements RuleMethod {
    private final UpdateRule rule;
    private final Schedule schedule;
    private final Clipping clipping;
    private final LisaPolicy lisa;
    private final Predicate<Parameter> trained;
    private final Model model;
    private final long seed;
    private float lr;
    private int step;
    /** The microbatch of the step being applied: with the step, it keys the rounding of bfloat16 updates. */
    private int part;

    /**
     * @param lisa    null to train every block
     * @param trained which parameters the rule updates (the others' gradients are dropped: frozen norms
     *                under LoRA, for example)
     * @param seed    keys the stochastic rounding of bfloat16 weights' updates
     */
    public InBackwardStep(Model model, UpdateRule rule, Schedule schedule, Clipping clipping, LisaPolicy lisa,
                          Predicate<Parameter> trained, long seed) {
        this.seed = seed;
        this.model = model;
        this.rule = rule;
        this.schedule = schedule;
        this.clipping = clipping;
        this.lisa = lisa;
        this.trained = trained;
    }

    @Override
    public void beginStep(int step) {
        this.step = step;
        this.part = 0;
        lr = schedule.at(step);
        if (lisa != null) lisa.applyTo(model, step, rule);
    }

    /**
     * Stage 0 is the embedding, 1..L the blocks, L+1 the head; frozen blocks get no sink. A tied matrix's
     * gradient comes in two parts (head first, embedding last): unless the rule is additive and this is the
     * updating pass, both parts are added into one held sum — the head's product lands in it, the embedding
     * adds its rows to it — and {@link TiedSum#backward} hands it over once, so the rule (or the norm) sees the
     * whole gradient once, as in a classic step, with one tied-matrix gradient in memory.
     */
    private TiedSum sinks(GradientSink sink, boolean partsMayBeApart) {
        Parameter tied = !partsMayBeApart && model.head().weight() == model.embedding().tokenTable() ? model.head().weight() : null;
        return new TiedSum(sink, tied);
    }

    /** The sinks of one backward, holding a tied matrix's sum until both parts are in. */
    private final class TiedSum implements Model.Sinks {
        private final GradientSink sink;
        private final Parameter tied;
        private final GradientSink combined;
        private Tensor held;

        TiedSum(GradientSink sink, Parameter tied) {
            this.sink = sink;
            this.tied = tied;
            this.combined = new GradientSink() {
                @Override
                public void accept(Parameter p, Tensor g) {
                    sink.accept(p, g);
                }

                @Override
                public Tensor sumFor(Parameter p) {
                    if (p != tied) return null;
                    if (held == null) held = p.value().device().allocate(Category.GRADIENTS, p.value().shape());
                    return held;
                }

                @Override
                public boolean holdsSumFor(Parameter p) {
                    return p == tied && held != null;
                }
            };
        }

        @Override
        public GradientSink forStage(int stage) {
            return trainsAnything(stage) ? combined : null;
        }

        /** Forward and backward of one batch; then the tied matrix's whole gradient goes to the sink and is freed. */
        double backward(Model m, Batch b, float gradScale) {
            double loss;
            try {
                loss = m.forwardBackward(b.inputs(), b.targets(), b.positions(), b.batch(), b.seq(), gradScale, this);
            } catch (RuntimeException | Error e) {
                if (held != null) held.close();
                throw e;
            }
            if (held == null) return loss;
            try (Tensor total = held) {
                held = null;
                sink.accept(tied, total);
            }
            return loss;
        }
    }

    /** Whether a stage has any parameter to update now; if not, its backward computes no weight gradient. */
    private boolean trainsAnything(int stage) {
        int layers = model.blocks().size();
        List<Parameter> ps = new ArrayList<>();
        if (stage == 0) {
            ps.addAll(model.embedding().parameters());
        } else if (stage == layers + 1) {
            ps.addAll(model.head().parameters(true));
        } else {
            TransformerBlock b = model.blocks().get(stage - 1);
            if (!b.trainable()) return false;
            ps.addAll(b.parameters());
            for (Linear l : b.linears()) {
                if (l.lowRank() != null) {
                    ps.add(l.lowRank().a());
                    ps.add(l.lowRank().b());
                }
            }
        }
        return ps.stream().anyMatch(trained);
    }

    @Override
    public double microbatch(Model m, Batch b, float gradScale) {
        float factor = 1f;
        if (clipping.byNorm()) {
            double[] sq = {0};
            sinks((p, g) -> {
                if (trained.test(p)) sq[0] += g.device().sumOfSquares(g);
            }, false).backward(m, b, gradScale);
            factor = clipping.factor(Math.sqrt(sq[0]));
        }
        float f = factor;
        int microbatch = part++;
        return sinks((p, g) -> {
            if (!trained.test(p)) return;
            if (f != 1f) g.device().scale(g, f);
            if (clipping.byValue()) g.device().clamp(g, clipping.value());
            p.update(Bf16.updateKey(seed, step, microbatch, p.name()), () -> rule.apply(p, g, lr));
        }, partsMayBeApart()).backward(m, b, gradScale);
    }

    /**
     * Whether a tied matrix may take its two gradient parts as two updates: with an additive rule, no clipping by value,
     * and float32 weights — two bfloat16 roundings are not the one of their sum.
     */
    private boolean partsMayBeApart() {
        return rule.additive() && !clipping.byValue() && model.embedding().tokenTable().value().dtype() == DType.F32;
    }

    @Override
    public void endStep() {}

    @Override
    public UpdateRule rule() {
        return rule;
    }

    @Override
    public void close() {
        rule.close();
    }
}
