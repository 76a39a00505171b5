package relay.transport;

/** A tensor connection to another node broke: most often that node is gone. */
public final class ConnectionLost extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    public ConnectionLost(String message, Throwable cause) {
        super(message, cause);
    }
}
