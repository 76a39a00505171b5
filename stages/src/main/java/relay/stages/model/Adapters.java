package relay.stages.model;

import relay.stages.layers.Linear;
import relay.stages.layers.LowRank;
import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.tensor.Bf16;
import relay.stages.tensor.Device;
import relay.stages.tensor.Tensor;

/** Builds the low-rank terms of LoRA and RSO for a linear layer, named after its weight. */
public final class Adapters {
    private Adapters() {}

    private static String base(Linear linear) {
        String w = linear.weight().name();
        return w.endsWith(".weight") ? w.substring(0, w.length() - ".weight".length()) : w;
    }

    /**
     * LoRA: A [rank, in] ~ N(0, 1/in) and B [out, rank] = 0, so training starts from the base model;
     * both trained, scaled by alpha/rank, and both weight-decayed, as a PEFT model under Hugging Face's trainer is.
     * Names follow PEFT (lora_A.weight, lora_B.weight).
     */
    public static LowRank lora(Linear linear, int rank, float alpha, Initializer init) {
        String n = base(linear);
        Parameter a = init.normal(n + ".lora_A.weight", (float) (1.0 / Math.sqrt(linear.in())), rank, linear.in());
        Parameter b = new Parameter(n + ".lora_B.weight", init.device().allocate(Category.PARAMETERS, linear.out(), rank), true);
        LowRank term = new LowRank(a, true, b, alpha / rank);
        linear.setLowRank(term);
        return term;
    }

    /**
     * RSO's subspace: Pᵀ [rank, in] with N(0, 1/rank) entries (held as optimizer state, never trained) and
     * the trained B [out, rank] = 0; the weight is W + B·Pᵀ. B, a step within the period rather than a weight, is not
     * weight-decayed: a checkpoint folds it into W and the period goes on from B = 0, which decay would tell apart.
     */
    public static LowRank subspace(Linear linear, int rank, long seed) {
        String n = base(linear);
        Device d = linear.weight().value().device();
        Parameter p = new Parameter(n + ".rso_P", d.empty(Category.OPTIMIZER_STATE, rank, linear.in()), false);
        fillProjection(p.value(), n, rank, seed);
        Parameter b = new Parameter(n + ".rso_B", d.allocate(Category.PARAMETERS, linear.out(), rank), false);
        LowRank term = new LowRank(p, false, b, 1f);
        linear.setLowRank(term);
        return term;
    }

    /** RSO's outer step: W += B·Pᵀ, B = 0 and a fresh P from the new seed. The model's function is unchanged. */
    public static void redraw(Linear linear, long seed) {
        LowRank term = linear.lowRank();
        linear.mergeLowRank(Bf16.updateKey(seed, 0, -1, linear.weight().name()));
        term.b().value().device().fill(term.b().value(), 0f);
        fillProjection(term.a().value(), base(linear), term.rank(), seed);
    }

    private static void fillProjection(Tensor p, String name, int rank, long seed) {
        Initializer.SplitMix rng = new Initializer.SplitMix(seed ^ (0x9E3779B97F4A7C15L * name.hashCode()));
        float[] v = new float[Math.toIntExact(p.size())];
        double std = 1.0 / Math.sqrt(rank);
        for (int i = 0; i < v.length; i++) v[i] = (float) (std * rng.nextGaussian());
        p.copyFrom(v);
    }
}
