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
 */
public final class LowRankStep implements TrainingMethod {
    private final Model model;
    private final boolean lora;
    private final UpdateRule rule;
    private final InBackwardStep inner;
    private final List<Linear> linears = new ArrayList<>();
    private final int period;
    private final long seed;

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

    @Override
    public void beginStep(int step) {
        if (!lora && step > 0 && step % period == 0) {
            for (Linear l : linears) {
                Adapters.redraw(l, seed + step);
                rule.release(l.lowRank().b());
            }
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

    @Override
    public java.util.Map<String, float[]> optimizerState() {
        return rule.export();
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
