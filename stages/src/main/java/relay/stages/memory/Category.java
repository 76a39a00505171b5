package relay.stages.memory;

/** What a block of device memory is for; every allocation carries exactly one. */
public enum Category {
    PARAMETERS,
    GRADIENTS,
    OPTIMIZER_STATE,
    ACTIVATIONS,
    COMMUNICATION,
    WORKSPACE,
    /** Copies of other stages' (and its own) state held in a node's memory, so a lost node costs a step, not a checkpoint interval. */
    SNAPSHOTS;

    /**
     * Whether memory of this category lives for a step or less (activations, gradients, workspace, messages) rather
     * than the run (weights, optimizer state, snapshots): a device keeps the two apart, so that memory freed step
     * after step is not cut into holes by what stays.
     */
    public boolean stepScoped() {
        return this == GRADIENTS || this == ACTIVATIONS || this == COMMUNICATION || this == WORKSPACE;
    }

    /** The lower-case name used in reports and JSON ("optimizer_state"). */
    public String key() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
