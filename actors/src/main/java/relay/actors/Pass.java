package relay.actors;

/**
 * Which pass of a step a message belongs to: the updating pass; the norm-only pass that clipping by global
 * norm runs first (gradients summed for their norm, nothing updated); or a forward-only evaluation.
 */
public enum Pass {
    TRAIN,
    NORM,
    EVAL;

    /** Whether the pass runs backward: every pass but an evaluation. */
    public boolean backward() {
        return this != EVAL;
    }
}
