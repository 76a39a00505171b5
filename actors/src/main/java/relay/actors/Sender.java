package relay.actors;

import org.apache.pekko.actor.typed.ActorRef;
import relay.transport.TensorChannel;
import relay.transport.WireMessage;

/**
 * Where a connected stage's messages go: to a stage of another node through this node's tensor channel, else
 * (same node, or one JVM) as a tell. Everything one stage sends another takes one path, so it arrives in the
 * order sent. The channel may make the stage wait while the connection's queue is full: back-pressure from a
 * slower network or stage. What the role computed goes out as a span of the trace each.
 */
final class Sender implements Outbox {
    /** Which stage of which replica sends: where its neighbours are among {@link StageCommand.Connect#stages()}. */
    private final StageSpec spec;
    private final StageCommand.Connect links;
    /** This node's tensor channel, or null (one JVM). */
    private final TensorChannel channel;
    private final TraceRecorder trace;
    private final ActorRef<StageEvent> events;

    Sender(StageSpec spec, StageCommand.Connect links, TensorChannel channel, TraceRecorder trace, ActorRef<StageEvent> events) {
        this.spec = spec;
        this.links = links;
        this.channel = channel;
        this.trace = trace;
        this.events = events;
        if (channel != null) {
            for (int s = 0; s < links.stages().size(); s++) {
                if (!links.channels().get(s).isEmpty()) channel.peer(links.channels().get(s), links.stages().get(s).path().address().toString());
            }
        }
    }

    /** A message to stage {@code stage} of this stage's replica. */
    void deliver(int stage, StageCommand m) {
        deliverToActor(spec.placement().actor(spec.replica(), stage), m);
    }

    private void deliverToActor(int to, StageCommand m) {
        deliver(channel, links.channels().get(to), links.stages().get(to), m);
    }

    /** A message for an actor of the node whose tensor channel is at {@code address}: through this node's channel, else (same node, one JVM) as a tell. */
    static <T extends WireMessage> void deliver(TensorChannel channel, String address, ActorRef<T> to, T m) {
        if (channel != null && !address.isEmpty() && !address.equals(channel.address())) {
            channel.send(address, to, m);
        } else {
            to.tell(m);
        }
    }

    /** To stage {@code stage} of replica {@code replica}, traced. */
    private void send(int replica, int stage, StageCommand m, Position pos) {
        long t0 = System.nanoTime();
        deliverToActor(spec.placement().actor(replica, stage), m);
        trace.span("send", t0, System.nanoTime(), pos);
    }

    @Override
    public void toNext(StageCommand m, Position pos) {
        send(spec.replica(), spec.stage() + 1, m, pos);
    }

    @Override
    public void toPrevious(StageCommand m, Position pos) {
        send(spec.replica(), spec.stage() - 1, m, pos);
    }

    @Override
    public void toEmbedding(StageCommand m, Position pos) {
        send(spec.replica(), 0, m, pos);
    }

    @Override
    public void toHead(StageCommand m, Position pos) {
        send(spec.replica(), spec.placement().stages() - 1, m, pos);
    }

    @Override
    public void toReplica(int replica, StageCommand m, Position pos) {
        send(replica, spec.stage(), m, pos);
    }

    @Override
    public void loss(Position pos, double loss) {
        events.tell(new StageEvent.Loss(spec.id(), pos, loss));
    }
}
