package relay.optimizers;

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
 * from when none is given, the rule it applies to each parameter in the actor pipeline (for the methods
 * that run there) and how it trains a whole model on the plain loop. Help texts, {@code lr = auto} and the
 * unknown-method error all read from here.
 */
public enum Method {
    ADAMW("adamw", "classic AdamW: all gradients held, then one step (in the pipeline: AdamW per parameter in backward)",
            2e-3f, OptimizerSettings::adamW) {
        @Override
        public TrainingMethod create(Model model, OptimizerSettings s) {
            return new ClassicStep(s.adamW(), s.schedule(), s.clipping());
        }
    },
    SGD("sgd", "classic SGD: all gradients held, then one step", 0.3f, null) {
        @Override
        public TrainingMethod create(Model model, OptimizerSettings s) {
            return new ClassicStep(new Sgd(s.weightDecay()), s.schedule(), s.clipping());
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
    RSO("rso", "RSO: block weights trained in random rank-r subspaces (Adam on B)", 2e-3f, null) {
        @Override
        public TrainingMethod create(Model model, OptimizerSettings s) {
            return new LowRankStep(model, false, s.adamW(), s);
        }
    },
    GALORE("galore", "GaLore: block gradients projected to rank r, Adam in the projection", 2e-3f, null) {
        @Override
        public TrainingMethod create(Model model, OptimizerSettings s) {
            Set<Parameter> projected = blockWeights(model);
            return new InBackwardStep(model, new GaLore(s.rank(), s.galoreGap(), s.galoreScale(), s.beta1(), s.beta2(), s.eps(),
                    s.weightDecay(), s.seed(), projected::contains), s.schedule(), s.clipping(), null, p -> true);
        }
    },
    LORA("lora", "LoRA: rank-r adapters on block linears, everything else frozen", 1e-2f, null) {
        @Override
        public TrainingMethod create(Model model, OptimizerSettings s) {
            return new LowRankStep(model, true, s.adamW(), s);
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
     * Whether the method runs in the actor pipeline: it applies one rule to each parameter, inside backward.
     * The others change the model's layers (RSO, GaLore, LoRA) or hold every gradient (SGD) and run on the
     * plain loop.
     */
    public boolean inPipeline() {
        return rule != null;
    }

    /** Whether the method samples the blocks that train (LISA). */
    public boolean samplesBlocks() {
        return this == LISA || this == LISA_ADALOMO || this == LISA_LOMO;
    }

    /** The rule the method applies to each parameter in the pipeline. */
    public UpdateRule rule(OptimizerSettings s) {
        if (rule == null) {
            throw new IllegalArgumentException("optimizer '" + key + "' runs on the plain loop only, not in the pipeline");
        }
        return rule.apply(s);
    }

    /**
     * The method training a whole model on the plain loop; the in-backward methods apply their rule as each
     * gradient completes, LISA's to the embedding, the head and the blocks drawn for the period.
     */
    public TrainingMethod create(Model model, OptimizerSettings s) {
        int blocks = model.blocks().size();
        LisaPolicy lisa = samplesBlocks() ? new LisaPolicy(blocks, Math.min(s.lisaGamma(), blocks), s.lisaPeriod(), s.seed()) : null;
        return new InBackwardStep(model, rule(s), s.schedule(), s.clipping(), lisa, p -> true);
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

    private static Set<Parameter> blockWeights(Model model) {
        Set<Parameter> ws = Collections.newSetFromMap(new IdentityHashMap<>());
        for (TransformerBlock b : model.blocks()) for (Linear l : b.linears()) ws.add(l.weight());
        return ws;
    }
}
