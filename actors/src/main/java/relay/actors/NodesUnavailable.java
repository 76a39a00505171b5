package relay.actors;

/** The nodes a run needs are not there: they did not join in time, or one was lost. The machine's failure, not the input's. */
public final class NodesUnavailable extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    public NodesUnavailable(String message) {
        super(message);
    }
}
