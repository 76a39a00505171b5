package relay.actors;

/**
 * The coordinator's own load for one request: the messages it took and sent for it (the request itself the
 * first) and its time handling them. A step reports both, so that the coordinator's share stays visible as
 * pipelines grow.
 */
final class CoordinatorLoad {
    private long messages = 1;
    private long nanos;

    void sent(int count) {
        messages += count;
    }

    /** A message for the request arrives; returns when its handling began. */
    long took() {
        messages++;
        return System.nanoTime();
    }

    void handled(long since) {
        nanos += System.nanoTime() - since;
    }

    /** The messages so far and the reply about to go. */
    long messagesWithReply() {
        return messages + 1;
    }

    long nanos() {
        return nanos;
    }
}
