package relay.optimizers;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.function.Function;
import relay.stages.layers.Linear;
import relay.stages.layers.Parameter;
import relay.stages.layers.TransformerBlock;
import relay.stages.model.Model;
import relay.stages.train.TrainingMethod;

/**
 * Every training method Relay runs, in one place: its name, what it does, the learning rate a run starts
 * from when none is given, how it trains a part of a model ({@link #training}: its rule, the low-rank terms it
 * adds, what it updates — one stage in the actor pipeline, or every block on the plain loop) and the plain
 * loop's method for a whole model. Help texts, {@code lr = auto} and the unknown-method error all read from here.
 */
public enum Method {
    ADAMW("adamw", "classic AdamW: all gradients held, then one step (in the pipeline: AdamW per parameter in backward)",
            2e-3f, OptimizerSettings::adamW) {
        @Override
        public TrainingMethod create(Model model, OptimizerSettings s) {
            return new ClassicStep(s.adamW(), s.schedule(), s.clipping(), s.seed());
        }
    },
    SGD("sgd", "classic SGD: all gradients held, then one step", 0.3f, null) {
        @Override
        public TrainingMethod create(Model model, OptimizerSettings s) {
            return new ClassicStep(new Sgd(s.weightDecay()), s.schedule(), s.clipping(), s.seed());
        }
    },
    LOMO("lomo", "LOMO: SGD fused into backward", 0.3f, s -> new Sgd(s.weightDecay())),
    ADALOMO("adalomo", "AdaLomo: factored adaptive rate fused into backward", 0.02f, s -> AdaLomo.defaults(s.weightDecay())),
    ADAMW_FUSED("adamw-fused", "AdamW applied per parameter inside backward", 2e-3f, OptimizerSettings::adamW),
    LISA("lisa", "LISA: embedding, head and γ sampled blocks train (AdamW in backward)", 2e-3f, OptimizerSettings::adamW),
    LISA_ADALOMO("lisa-adalomo", "LISA with AdaLomo in backward on the embedding, head and γ sampled blocks: no AdamW state anywhere",
            0.02f, s -> AdaLomo.defaults(s.weightDecay())),
    LISA_LOMO("lisa-lomo", "LISA with LOMO (SGD in backward) on the embedding, head and γ sampled blocks: no optimizer state",
            0.3f, s -> new Sgd(s.weightDecay())),
    RSO("rso", "RSO: block weights trained in random rank-r subspaces (Adam on B)", 2e-3f, OptimizerSettings::adamW) {
        @Override
        public Training training(List<Linear> linears, OptimizerSettings s) {
            LowRankTerms terms = LowRankTerms.subspaces(linears, s);
            return new Training(s.adamW(), terms, terms::trains);
        }
    },
    GALORE("galore", "GaLore: block gradients projected to rank r, Adam in the projection", 2e-3f, null) {
        @Override
        public Training training(List<Linear> linears, OptimizerSettings s) {
            Set<Parameter> projected = Collections.newSetFromMap(new IdentityHashMap<>());
            for (Linear l : linears) projected.add(l.weight());
            return new Training(new GaLore(s.lowRank().rank(), s.lowRank().galoreGap(), s.lowRank().galoreScale(), s.adam().beta1(),
                    s.adam().beta2(), s.adam().eps(), s.weightDecay(), s.seed(), projected::contains), null, p -> true);
        }
    },
    LORA("lora", "LoRA: rank-r adapters on block linears, everything else frozen", 1e-2f, OptimizerSettings::adamW) {
        @Override
        public Training training(List<Linear> linears, OptimizerSettings s) {
            LowRankTerms terms = LowRankTerms.adapters(linears, s);
            return new Training(s.adamW(), terms, terms::trains);
        }
    };

    private final String key;
    private final String description;
    private final float defaultLearningRate;
    private final Function<OptimizerSettings, UpdateRule> rule;

    Method(String key, String description, float defaultLearningRate, Function<OptimizerSettings, UpdateRule> rule) {
        this.key = key;
        this.description = description;
        this.defaultLearningRate = defaultLearningRate;
        this.rule = rule;
    }

    /** The name a user types. */
    public String key() {
        return key;
    }

    public String description() {
        return description;
    }

    /** The rate {@code lr = auto} trains a model from scratch with (fine-tuning takes a tenth of it). */
    public float defaultLearningRate() {
        return defaultLearningRate;
    }

    /**
     * Whether the method runs in the actor pipeline: it updates each parameter inside backward, from its
     * stage's gradients alone. SGD's classic step holds every gradient and runs on the plain loop only.
     */
    public boolean inPipeline() {
        return this != SGD;
    }

    /** Whether the method samples the blocks that train (LISA). */
    public boolean samplesBlocks() {
        return this == LISA || this == LISA_ADALOMO || this == LISA_LOMO;
    }

    /**
     * Whether LISA's block sampling combines with the method (γ &gt; 0 turns it on): the rules that update whole
     * parameters do; RSO, GaLore and LoRA, which train blocks through subspaces or adapters of their own, do not.
     */
    public boolean takesLisa() {
        return inPipeline() && this != RSO && this != GALORE && this != LORA;
    }

    /** Whether the method redraws its blocks' subspaces every period (RSO). */
    public boolean redrawsSubspaces() {
        return this == RSO;
    }

    /**
     * How the method trains a part of a model whose block linears are {@code linears} (none for the embedding
     * or the head): the part's rule, the terms it adds to those linears, the parameters it updates.
     */
    public Training training(List<Linear> linears, OptimizerSettings s) {
        if (!inPipeline()) throw new IllegalArgumentException("optimizer '" + key + "' runs on the plain loop only, not in the pipeline");
        return new Training(rule.apply(s), null, p -> true);
    }

    /**
     * The method training a whole model on the plain loop, inside backward as in the pipeline; LISA's rule
     * goes to the embedding, the head and the blocks drawn for the period.
     */
    public TrainingMethod create(Model model, OptimizerSettings s) {
        LisaPolicy lisa = samplesBlocks() ? LisaPolicy.of(model.blocks().size(), s) : null;
        List<Linear> linears = new ArrayList<>();
        for (TransformerBlock b : model.blocks()) linears.addAll(b.linears());
        Training t = training(linears, s);
        InBackwardStep step = new InBackwardStep(model, t.rule(), s.schedule(), s.clipping(), lisa, t.updates(), s.seed());
        return t.terms() == null ? step : new LowRankStep(step, t, s.lowRank().rsoPeriod());
    }

    /** Every method's name, in this order. */
    public static List<String> keys() {
        return Arrays.stream(values()).map(Method::key).toList();
    }

    /** The method of this name; an unknown one is an error listing the known. */
    public static Method named(String key) {
        for (Method m : values()) if (m.key.equals(key.toLowerCase(Locale.ROOT))) return m;
        throw new IllegalArgumentException("unknown optimizer '" + key + "'; known: " + String.join(", ", keys()));
    }
}
