package relay.optimizers;

import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import relay.stages.layers.Linear;
import relay.stages.layers.Parameter;
import relay.stages.layers.TransformerBlock;
import relay.stages.model.Model;
import relay.stages.train.TrainingMethod;

/** The training methods by name, each built for one model. */
public final class Optimizers {
    private Optimizers() {}

    public static final List<String> NAMES = List.of("adamw", "sgd", "lomo", "adalomo", "adamw-fused", "lisa", "rso",
            "galore", "lora");

    /** One line per method, for help texts. */
    public static String describe(String name) {
        return switch (name) {
            case "adamw" -> "classic AdamW: all gradients held, then one step";
            case "sgd" -> "classic SGD: all gradients held, then one step";
            case "lomo" -> "LOMO: SGD fused into backward";
            case "adalomo" -> "AdaLomo: factored adaptive rate fused into backward";
            case "adamw-fused" -> "AdamW applied per parameter inside backward";
            case "lisa" -> "LISA: embedding, head and γ sampled blocks train (AdamW in backward)";
            case "rso" -> "RSO: block weights trained in random rank-r subspaces (Adam on B)";
            case "galore" -> "GaLore: block gradients projected to rank r, Adam in the projection";
            case "lora" -> "LoRA: rank-r adapters on block linears, everything else frozen";
            default -> throw unknown(name);
        };
    }

    /**
     * The update rule a method applies to each parameter, for callers that run their own loop (the actor
     * pipeline): lomo and sgd apply SGD, adalomo AdaLomo, adamw, adamw-fused and lisa AdamW.
     */
    public static UpdateRule rule(String name, OptimizerSettings s) {
        return switch (name) {
            case "lomo", "sgd" -> new Sgd(s.weightDecay());
            case "adalomo" -> AdaLomo.defaults(s.weightDecay());
            case "adamw", "adamw-fused", "lisa" -> s.adamW();
            case "rso", "galore", "lora" -> throw new IllegalArgumentException("optimizer '" + name
                    + "' changes the model's layers and runs on the plain loop only, not in the pipeline");
            default -> throw unknown(name);
        };
    }

    /** A learning rate that trains a small model well with each method (SGD-like rules need larger ones). */
    public static float defaultLearningRate(String name) {
        return switch (name) {
            case "sgd", "lomo" -> 0.5f;
            case "adalomo", "lora" -> 0.05f;
            case "adamw", "adamw-fused", "lisa", "rso", "galore" -> 0.01f;
            default -> throw unknown(name);
        };
    }

    private static IllegalArgumentException unknown(String name) {
        return new IllegalArgumentException("unknown optimizer '" + name + "'; known: " + String.join(", ", NAMES));
    }

    public static TrainingMethod create(String name, Model model, OptimizerSettings s) {
        return switch (name) {
            case "adamw" -> new ClassicStep(s.adamW(), s.schedule(), s.clipping());
            case "sgd" -> new ClassicStep(new Sgd(s.weightDecay()), s.schedule(), s.clipping());
            case "lomo" -> inBackward(model, new Sgd(s.weightDecay()), s, null);
            case "adalomo" -> inBackward(model, AdaLomo.defaults(s.weightDecay()), s, null);
            case "adamw-fused" -> inBackward(model, s.adamW(), s, null);
            case "lisa" -> inBackward(model, s.adamW(), s,
                    new LisaPolicy(model.blocks().size(), Math.min(s.lisaGamma(), model.blocks().size()), s.lisaPeriod(), s.seed()));
            case "rso" -> new LowRankStep(model, false, s.adamW(), s);
            case "galore" -> {
                Set<Parameter> projected = blockWeights(model);
                yield inBackward(model, new GaLore(s.rank(), s.galoreGap(), s.galoreScale(), s.beta1(), s.beta2(), s.eps(),
                        s.weightDecay(), s.seed(), projected::contains), s, null);
            }
            case "lora" -> new LowRankStep(model, true, s.adamW(), s);
            default -> throw unknown(name);
        };
    }

    private static InBackwardStep inBackward(Model model, UpdateRule rule, OptimizerSettings s, LisaPolicy lisa) {
        return new InBackwardStep(model, rule, s.schedule(), s.clipping(), lisa, p -> true);
    }

    private static Set<Parameter> blockWeights(Model model) {
        Set<Parameter> ws = Collections.newSetFromMap(new IdentityHashMap<>());
        for (TransformerBlock b : model.blocks()) for (Linear l : b.linears()) ws.add(l.weight());
        return ws;
    }
}
