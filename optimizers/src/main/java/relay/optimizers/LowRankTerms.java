package relay.optimizers;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Predicate;
import relay.stages.layers.Linear;
import relay.stages.layers.LowRank;
import relay.stages.layers.Parameter;
import relay.stages.model.Adapters;
import relay.stages.model.Initializer;
import relay.stages.tensor.Bf16;

/**
 * The low-rank terms RSO or LoRA add to a set of linears — every block's on the plain loop, one block's in a
 * stage actor, so both run the same code:
 * <ul>
 *   <li>RSO (Chen et al. 2025, arXiv 2502.07222): W + B·Pᵀ with P a random rank-r projection and only B
 *   trained; every {@code rsoPeriod} steps B is merged into W, reset and P redrawn — the function is unchanged
 *   at the merge. Norms train in full, the linears' weights and biases do not. Backward needs only x·P for
 *   B's gradient, so a block keeps N×r projections instead of its linears' inputs.</li>
 *   <li>LoRA: W + (α/r)·B·A with A and B trained and everything else frozen.</li>
 * </ul>
 * Each term's values depend only on the seed and its linear's name, so they are the same wherever a block is
 * placed. Closing merges the terms into the weights, leaving plain linears.
 */
public final class LowRankTerms implements AutoCloseable {
    private final boolean lora;
    private final long seed;
    private final List<Linear> linears;
    private final Set<Parameter> frozen = Collections.newSetFromMap(new IdentityHashMap<>());
    private final Set<Parameter> terms = Collections.newSetFromMap(new IdentityHashMap<>());
    private final Map<Parameter, Linear> termOf = new IdentityHashMap<>();

    private LowRankTerms(boolean lora, List<Linear> linears, OptimizerSettings s) {
        this.lora = lora;
        this.seed = s.seed();
        this.linears = List.copyOf(linears);
        for (Linear l : this.linears) {
            Initializer init = new Initializer(l.weight().value().device(), seed);
            LowRank t = lora ? Adapters.lora(l, s.lowRank().rank(), s.lowRank().loraAlpha(), init)
                    : Adapters.subspace(l, s.lowRank().rank(), seed);
            terms.add(t.a());
            terms.add(t.b());
            termOf.put(l.weight(), l);
            frozen.add(l.weight());
            if (l.bias() != null) frozen.add(l.bias());
        }
    }

    /** RSO's subspaces on these linears, drawn for step 0. */
    static LowRankTerms subspaces(List<Linear> linears, OptimizerSettings s) {
        return new LowRankTerms(false, linears, s);
    }

    /** LoRA's adapters on these linears. */
    static LowRankTerms adapters(List<Linear> linears, OptimizerSettings s) {
        return new LowRankTerms(true, linears, s);
    }

    /**
     * The step whose seed draws RSO's subspaces in force at {@code step}: the last multiple of the period. A
     * run (or a resumed one) whose terms were drawn for another step redraws them before {@code step} runs.
     */
    public static long drawFor(long step, int period) {
        return step / period * period;
    }

    /** Whether the terms are redrawn every period (RSO's subspaces; LoRA's adapters never are). */
    public boolean redraws() {
        return !lora;
    }

    /** Whether the rule updates p: LoRA only its adapters; RSO everything but the linears' weights and biases. */
    public boolean trains(Parameter p) {
        return lora ? terms.contains(p) : !frozen.contains(p);
    }

    /** The terms' matrices (A and B of each linear), in the linears' order. */
    public List<Parameter> parameters() {
        List<Parameter> ps = new ArrayList<>();
        for (Linear l : linears) {
            ps.add(l.lowRank().a());
            ps.add(l.lowRank().b());
        }
        return ps;
    }

    /**
     * RSO's outer step for the draw of step {@code draw}: W += B·Pᵀ, B = 0 and a fresh P. Returns the
     * parameters whose optimizer state the caller releases when the draw starts a period afresh (B's; a run
     * resumed inside a period keeps the state it restored).
     */
    public List<Parameter> redraw(long draw) {
        if (lora) throw new IllegalStateException("LoRA's adapters are never redrawn");
        List<Parameter> bs = new ArrayList<>();
        for (Linear l : linears) {
            Adapters.redraw(l, seed + draw);
            bs.add(l.lowRank().b());
        }
        return bs;
    }

    /**
     * p's values as the model computes with them: a linear's weight with its term folded in, null for a
     * parameter with no term (its own values are the model's).
     */
    public float[] effectiveValues(Parameter p) {
        Linear l = termOf.get(p);
        return l == null ? null : l.effectiveWeight();
    }

    /**
     * State beyond the rule's that a checkpoint carries: LoRA's adapters' values ("…lora_A.weight/value"),
     * which the model's weights do not hold. RSO's terms need none — P is drawn again from the seed, and B is
     * folded into the weights a checkpoint holds. Only those of the parameters {@code kept}: replicas all hold every
     * adapter, and a checkpoint takes each once, from the replica that keeps its state.
     */
    public Map<String, float[]> values(Predicate<Parameter> kept) {
        Map<String, float[]> out = new TreeMap<>();
        if (lora) for (Parameter p : parameters()) if (kept.test(p)) out.put(p.name() + "/value", p.value().toArray());
        return out;
    }

    /** Sets LoRA's adapters from values {@link #values} wrote (a resumed run); RSO takes none. */
    public void restoreValues(Map<String, float[]> state) {
        if (lora) for (Parameter p : parameters()) p.value().copyFrom(ParameterStates.exported(state, p, "value", p.size()));
    }

    /** Merges every term into its weight and frees it: the linears are plain again. */
    @Override
    public void close() {
        for (Linear l : linears) {
            l.mergeLowRank(Bf16.updateKey(seed, -1, -1, l.weight().name()));
            l.lowRank().close();
            l.setLowRank(null);
        }
    }
}
