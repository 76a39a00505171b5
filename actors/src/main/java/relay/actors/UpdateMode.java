package relay.actors;

/**
 * When a stage applies its weight gradients. EAGER: at every backward message (no gradient memory; a
 * microbatch's backward may see weights that moved since its forward — the staleness is measured). EXACT:
 * summed over the step's microbatches and applied once at the stage's last backward of the step, the same
 * result as one large-batch step. A tied matrix (GPT-2) is updated once per step in both modes.
 */
public enum UpdateMode {
    EAGER,
    EXACT
}
