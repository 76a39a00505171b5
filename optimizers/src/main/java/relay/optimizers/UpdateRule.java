package relay.optimizers;

import relay.stages.layers.Parameter;
import relay.stages.tensor.Tensor;

/**
 * An update rule applied in place to one parameter at a time, given that parameter's gradient. A rule
 * keeps its per-parameter state on the parameter's device as optimizer state; it knows nothing of the
 * model or of where the gradient came from, so the same rule serves a classic step (all gradients, then
 * all updates) and an update inside backward (each gradient applied the moment it exists).
 */
public interface UpdateRule extends AutoCloseable {

    /**
     * Applies one update with learning rate lr. The gradient is discarded afterwards, so a rule may use its
     * memory as scratch; it never keeps it.
     */
    void apply(Parameter p, Tensor grad, float lr);

    /**
     * Whether applying a gradient in parts, one update per part, equals applying their sum once (plain SGD
     * without decay). A tied matrix's two gradient parts then need not be held until both exist.
     */
    default boolean additive() {
        return false;
    }

    /** Frees p's state (a LISA block being frozen); its next update starts from fresh state. */
    void release(Parameter p);

    /**
     * Every parameter's state as values, named "parameter/role" (m, v, rows, cols, projector, steps...), for
     * a checkpoint; empty for a stateless rule.
     */
    default java.util.Map<String, float[]> export() {
        return java.util.Map.of();
    }

    /**
     * Sets p's state from values {@link #export} wrote (a checkpoint being resumed); p has no state after it
     * when they hold none for it (it had not been updated, or was frozen). A stateless rule accepts none.
     */
    default void restore(Parameter p, java.util.Map<String, float[]> exported) {
        String prefix = p.name() + "/";
        for (String key : exported.keySet()) {
            if (key.startsWith(prefix)) throw new IllegalArgumentException(getClass().getSimpleName() + " keeps no state, yet got " + key);
        }
    }

    /** Frees every parameter's state. */
    @Override
    void close();
}
