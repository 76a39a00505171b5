package relay.optimizers;

import java.util.function.Predicate;
import relay.stages.layers.Parameter;

/**
 * How a method trains a part of a model — the whole model on the plain loop, one stage in the pipeline: the
 * rule it applies inside backward, the low-rank terms it added to the part's block linears (RSO, LoRA; null
 * for the others) and which parameters the rule updates (the others' gradients are dropped).
 */
public record Training(UpdateRule rule, LowRankTerms terms, Predicate<Parameter> updates) {}
