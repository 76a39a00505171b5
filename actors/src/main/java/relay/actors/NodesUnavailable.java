package relay.actors;

/**
 * The nodes a run needs are not there: they did not join in time, or one was lost. The machine's failure, not the
 * input's. A lost node's carries the snapshot in the memory of the nodes left that the run can go on from, if any.
 */
public final class NodesUnavailable extends IllegalStateException {
    private static final long serialVersionUID = 1L;
    private final transient Pipeline.Snapshot snapshot;

    public NodesUnavailable(String message) {
        this(message, null);
    }

    public NodesUnavailable(String message, Pipeline.Snapshot snapshot) {
        super(message);
        this.snapshot = snapshot;
    }

    /** The newest snapshot every stage has on a node left, or null. */
    public Pipeline.Snapshot snapshot() {
        return snapshot;
    }
}
