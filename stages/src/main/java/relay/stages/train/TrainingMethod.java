package relay.stages.train;

import relay.stages.model.Model;

/**
 * How a step turns gradients into updates: the plain loop calls {@link #microbatch} for each microbatch
 * of a step, then {@link #endStep}. A method that updates inside backward applies each gradient in
 * {@code microbatch}; a classic one collects them and applies them in {@code endStep}.
 */
public interface TrainingMethod extends AutoCloseable {

    /** Called before the step's first microbatch (LISA redraws, RSO merges and redraws, schedules advance). */
    default void beginStep(int step) {}

    /** Forward and backward of one microbatch; gradients are of gradScale·loss. Returns the mean loss. */
    double microbatch(Model model, Batch batch, float gradScale);

    void endStep();

    /** The optimizer's state as named values ("parameter/role"), for a checkpoint; empty when stateless. */
    default java.util.Map<String, float[]> optimizerState() {
        return java.util.Map.of();
    }

    /** Sets the optimizer's state from what {@link #optimizerState} gave (a resumed run); none for a stateless one. */
    default void restore(Model model, java.util.Map<String, float[]> state) {
        if (!state.isEmpty()) throw new IllegalArgumentException(getClass().getSimpleName() + " cannot restore optimizer state");
    }

    /** Frees what the method holds (optimizer state, accumulated gradients). */
    @Override
    default void close() {}
}
