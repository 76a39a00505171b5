package relay.actors;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.time.Duration;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.cluster.ClusterEvent;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Leave;
import org.apache.pekko.cluster.typed.Subscribe;
import relay.transport.TensorChannel;

/**
 * A worker node: it joins the coordinator's cluster and offers its stage host as node {@code index}, with a
 * {@link TensorChannel} beside the remoting for the tensors its stages send to stages of other nodes. It ends
 * when the coordinator is gone (the run ended, or it was lost), when it was cut off and downed, or when the
 * coordinator refused it and it left; {@link #awaitEnd} waits for that and {@link #endedBecause} says which.
 */
public final class WorkerNode extends ClusterNodes {
    /** Whether it was ever up in the cluster, and whether the coordinator left it (rather than it being cut off). */
    private final AtomicBoolean joined = new AtomicBoolean(), coordinatorLeft = new AtomicBoolean();
    /** Why the coordinator refused it, once it has. */
    private final AtomicReference<String> refusal = new AtomicReference<>();

    private WorkerNode(ActorSystem<Local> system) {
        super(system);
    }

    static WorkerNode start(ClusterSettings settings, int index, Config extra) {
        if (settings.join().isEmpty()) throw new IllegalArgumentException("relay.cluster.join: a worker needs the coordinator's host:port");
        if (index < 1) throw new IllegalArgumentException("a worker's node index is 1 or more (0 is the coordinator's), not " + index);
        WorkerNode node = new WorkerNode(system(extra.withFallback(settings.pekko("worker")).withFallback(ConfigFactory.parseString(
                "pekko.cluster.shutdown-after-unsuccessful-join-seed-nodes = " + settings.joinTimeout().toMillis() + "ms"))));
        try {
            TensorChannel channel = TensorChannel.open(node.system, settings.host(), settings.maxMessage(), settings.sslContext());
            node.system.getWhenTerminated().thenRun(channel::close);
            // A peer whose process is gone is downed at once: the run goes on from its snapshot without waiting out the heartbeats.
            Cluster cluster = Cluster.get(node.system);
            channel.onPeerGone(peer -> {
                try {
                    cluster.manager().tell(new org.apache.pekko.cluster.typed.Down(org.apache.pekko.actor.AddressFromURIString.parse(peer)));
                } catch (IllegalStateException ending) {
                    // This node is ending too (the run is over): there is no cluster left to tell.
                }
            });
            ActorRef<StageHost.Command> host = spawnIn(node.system, StageHost.create(channel, node::leaveRefused), "host-" + index);
            node.hosts.add(host);
            node.system.receptionist().tell(Receptionist.register(HOSTS, host));
            spawnIn(node.system, node.endWithCoordinator(), "watch");
            return node;
        } catch (RuntimeException e) {
            node.system.terminate();
            throw e;
        } catch (java.io.IOException e) {
            node.system.terminate();
            throw new java.io.UncheckedIOException("node " + index + " could not open its tensor channel on " + settings.host() + ": "
                    + e.getMessage(), e);
        }
    }

    /** Notes when it is up, and ends it when the coordinator's node leaves (or is removed). */
    private Behavior<ClusterEvent.MemberEvent> endWithCoordinator() {
        return Behaviors.setup(ctx -> {
            Cluster cluster = Cluster.get(ctx.getSystem());
            cluster.subscriptions().tell(Subscribe.create(ctx.getSelf(), ClusterEvent.MemberEvent.class));
            return Behaviors.receive((c, m) -> {
                if (m instanceof ClusterEvent.MemberUp up && up.member().equals(cluster.selfMember())) joined.set(true);
                if (m instanceof ClusterEvent.MemberRemoved r && r.member().hasRole("coordinator")) {
                    coordinatorLeft.set(true);
                    c.getSystem().terminate();
                }
                return Behaviors.same();
            });
        });
    }

    /** Refused by the coordinator: keeps why, and leaves the cluster, which ends the node. */
    private void leaveRefused(String why) {
        refusal.set(why);
        Cluster cluster = Cluster.get(system);
        cluster.manager().tell(Leave.create(cluster.selfMember().address()));
    }

    /** Whether it has joined the cluster (a stop before that need not wait for any run). */
    public boolean joined() {
        return joined.get();
    }

    /**
     * Once it has ended: why, in a line — the run it served ended, it never joined (the coordinator was not there
     * within the join timeout), it was cut off and downed, or the coordinator refused it. Null when the run ended.
     */
    public String endedBecause() {
        if (refused()) return "refused by the coordinator: " + refusal.get();
        if (coordinatorLeft.get()) return null;
        return joined.get() ? "this node was cut off from the coordinator and downed" : "could not join the coordinator within the join timeout";
    }

    /** Whether it ended because the coordinator refused it (its index is another live node's). */
    public boolean refused() {
        return refusal.get() != null;
    }

    /** Blocks until the node has ended, or for at most {@code limit} (null: no limit); returns whether it ended. */
    public boolean awaitEnd(Duration limit) {
        try {
            var ended = system.getWhenTerminated().toCompletableFuture();
            if (limit == null) ended.get();
            else ended.get(limit.toMillis(), TimeUnit.MILLISECONDS);
            return true;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        } catch (TimeoutException e) {
            return false;
        } catch (ExecutionException e) {
            throw new IllegalStateException(e.getCause());
        }
    }
}
