package relay.optimizers;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import relay.stages.layers.Linear;
import relay.stages.layers.LowRank;
import relay.stages.layers.Parameter;
import relay.stages.layers.TransformerBlock;
import relay.stages.model.Adapters;
import relay.stages.model.Initializer;
import relay.stages.model.Model;
import relay.stages.train.Batch;
import relay.stages.train.TrainingMethod;

/**
 * Training through low-rank terms on every block linear, updated inside backward. Two methods share it:
 * <ul>
 *   <li>RSO (Chen et al. 2025, arXiv 2502.07222): W + B·Pᵀ with P a random rank-r projection and only B
 *   trained (Adam on B alone); every {@code rsoPeriod} steps B is merged into W, reset and P redrawn — the
 *   model's function is unchanged at the merge. Norms, embedding and head train in full. Backward needs
 *   only x·P for B's gradient, so blocks keep N×r projections instead of their linears' inputs.</li>
 *   <li>LoRA: W + (α/r)·B·A with A and B trained and everything else frozen.</li>
 * </ul>
 * Closing merges the terms into the weights, leaving a plain model.
 *
 * <p>Resuming: LoRA's state is its adapters' values and moments, over the base model the run started from.
 * RSO resumes from weights with B·Pᵀ folded in (what a checkpoint holds), B = 0, B's moments and the
 * projection of the current period drawn again from the seed — the same function and the same next updates
 * (B's update does not depend on B without weight decay), equal to an uninterrupted run up to float32
 * rounding.
 */
public final class LowRankStep implements TrainingMethod {
    private final Model model;
    private final boolean lora;
    private final UpdateRule rule;
    private final InBackwardStep inner;
    private final List<Linear> linears = new ArrayList<>();
    private final int period;
    private final long seed;
    /** The step whose seed drew the current projections (RSO). */
    private int drawnAt;

    LowRankStep(Model model, boolean lora, UpdateRule rule, OptimizerSettings s) {
        this.model = model;
        this.lora = lora;
        this.rule = rule;
        this.period = s.rsoPeriod();
        this.seed = s.seed();
        Initializer init = new Initializer(model.embedding().tokenTable().value().device(), seed);
        Set<Parameter> frozen = Collections.newSetFromMap(new IdentityHashMap<>());
        Set<Parameter> adapters = Collections.newSetFromMap(new IdentityHashMap<>());
        for (TransformerBlock b : model.blocks()) {
            for (Linear l : b.linears()) {
                LowRank t = lora ? Adapters.lora(l, s.rank(), s.loraAlpha(), init) : Adapters.subspace(l, s.rank(), seed);
                linears.add(l);
                adapters.add(t.a());
                adapters.add(t.b());
                frozen.add(l.weight());
                if (l.bias() != null) frozen.add(l.bias());
            }
        }
        this.inner = new InBackwardStep(model, rule, s.schedule(), s.clipping(), null,
                lora ? adapters::contains : p -> !frozen.contains(p));
    }

    /**
     * RSO redraws every {@code period} steps, merging B first and starting its moments afresh; a run resumed
     * within a period draws that period's projections again (B is zero then, its moments kept).
     */
    @Override
    public void beginStep(int step) {
        int draw = step / period * period;
        if (!lora && draw != drawnAt) {
            for (Linear l : linears) {
                Adapters.redraw(l, seed + draw);
                if (step == draw) rule.release(l.lowRank().b());
            }
            drawnAt = draw;
        }
        inner.beginStep(step);
    }

    @Override
    public double microbatch(Model m, Batch b, float gradScale) {
        return inner.microbatch(m, b, gradScale);
    }

    @Override
    public void endStep() {
        inner.endStep();
    }

    /** The rule's state and, for LoRA, the adapters' values ("…lora_A.weight/value"): the model's weights do not hold them. */
    @Override
    public java.util.Map<String, float[]> optimizerState() {
        java.util.Map<String, float[]> state = new java.util.TreeMap<>(rule.export());
        if (lora) {
            for (Linear l : linears) {
                for (Parameter p : List.of(l.lowRank().a(), l.lowRank().b())) state.put(p.name() + "/value", p.value().toArray());
            }
        }
        return state;
    }

    @Override
    public void restore(Model m, java.util.Map<String, float[]> state) {
        for (Linear l : linears) {
            for (Parameter p : List.of(l.lowRank().a(), l.lowRank().b())) {
                if (lora) p.value().copyFrom(ParameterStates.exported(state, p, "value", p.size()));
                rule.restore(p, state);
            }
        }
        m.parameters().forEach(p -> rule.restore(p, state));
    }

    @Override
    public void close() {
        for (Linear l : linears) {
            l.mergeLowRank();
            l.lowRank().close();
            l.setLowRank(null);
        }
        inner.close();
    }
}
