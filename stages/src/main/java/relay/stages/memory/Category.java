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

    /** The lower-case name used in reports and JSON ("optimizer_state"). */
    public String key() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
