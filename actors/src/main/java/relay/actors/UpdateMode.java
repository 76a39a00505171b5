package relay.actors;

/**
 * When a stage applies its weight gradients. EAGER: at every backward message (no gradient memory; a
 * microbatch's backward may see weights that moved since its forward — the staleness is measured). EXACT:
 * summed over the step's microbatches and applied once at the stage's last backward of the step, the same
 * result as one large-batch step. A tied matrix (GPT-2) is updated once per step in both modes.
 */
public enum UpdateMode {
    EAGER,
    EXACT;

    /** The name settings and options use. */
    public String key() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }

    public static UpdateMode parse(String s) {
        return switch (s) {
            case "eager" -> EAGER;
            case "exact" -> EXACT;
            default -> throw new IllegalArgumentException("must be eager or exact, not '" + s + "'");
        };
    }
}
