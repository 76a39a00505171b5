package relay.optimizers;

import java.util.Map;
import relay.stages.model.Model;
import relay.stages.train.TrainingMethod;

/** A training method applying one update rule to the model's own parameters: its state is the rule's. */
interface RuleMethod extends TrainingMethod {
    UpdateRule rule();

    @Override
    default Map<String, float[]> optimizerState() {
        return rule().export();
    }

    @Override
    default void restore(Model model, Map<String, float[]> state) {
        model.parameters().forEach(p -> rule().restore(p, state));
    }
}
