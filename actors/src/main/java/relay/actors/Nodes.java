package relay.actors;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;
import java.util.stream.IntStream;
import org.apache.pekko.actor.DeadLetter;
import org.apache.pekko.actor.NoSerializationVerificationNeeded;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;

/**
 * The nodes a pipeline runs on, seen from this JVM: its actor system and the stage host of every node that
 * holds devices. On one machine that is this JVM alone ({@link LocalNodes}); in a cluster this JVM is the
 * coordinator's node ({@link CoordinatorNodes}) or a worker ({@link WorkerNode}), each a {@link ClusterNodes}.
 * A node outlives the pipelines it runs (a run restarted after a failure builds its stages again on the same
 * nodes).
 */
public abstract sealed class Nodes implements AutoCloseable permits LocalNodes, ClusterNodes {
    /** Every node's stage host registers under this key; its name, host-i, says which node it is. */
    static final ServiceKey<StageHost.Command> HOSTS = ServiceKey.create(StageHost.Command.class, "relay-stage-host");

    /** What the guardian of a node's actor system does for this JVM's code: local requests, never sent elsewhere. */
    sealed interface Local extends NoSerializationVerificationNeeded {}

    /** Spawn a behavior under the guardian and hand its reference back. */
    private record Spawn<T>(Behavior<T> behavior, String name, CompletableFuture<ActorRef<T>> spawned) implements Local {}

    /** Stop a child of the guardian (a pipeline's coordinator). */
    private record Stop(ActorRef<?> child) implements Local {}

    final ActorSystem<Local> system;
    /** The hosts of the nodes that hold devices, in node order (a worker's: its own). */
    final List<ActorRef<StageHost.Command>> hosts = new CopyOnWriteArrayList<>();

    Nodes(ActorSystem<Local> system) {
        this.system = system;
    }

    /** This JVM alone: one node, whose host holds every device. {@code extra} is layered over the defaults. */
    public static Nodes local(Config extra) {
        return local(extra, DeviceKind.CPU);
    }

    /** This JVM alone, its devices of this kind. */
    public static Nodes local(Config extra, DeviceKind kind) {
        return LocalNodes.start(extra, kind);
    }

    /**
     * The coordinator's node of a cluster of {@code nodes} JVMs, once every worker has joined; a worker that comes with
     * an index a live one holds is refused, and {@code refused} told of it in a line.
     */
    public static Nodes coordinator(ClusterSettings settings, int nodes, Config extra, Consumer<String> refused) {
        return CoordinatorNodes.start(settings, nodes, extra, refused);
    }

    /** A worker node that joins the coordinator's cluster and offers a stage host as node {@code index}. */
    public static WorkerNode worker(ClusterSettings settings, int index, Config extra) {
        return WorkerNode.start(settings, index, extra);
    }

    /**
     * A node's actor system, its guardian spawning and stopping for this JVM's code; {@code extra} over the defaults. A
     * message to a stage that has stopped (a failed pipeline's last activations in flight) frees the tensor it carries:
     * a tensor received from another node holds one of the channel's few receive buffers until it is taken or freed.
     */
    static ActorSystem<Local> system(Config extra) {
        ActorSystem<Local> system = started(extra);
        ActorRef<DeadLetter> freeing = spawnIn(system, Behaviors.receiveMessage(d -> {
            if (d.message() instanceof StageCommand c) StageCommand.discardPayload(c);
            return Behaviors.same();
        }), "dead-letters");
        // Subscribed before the system is handed out (the typed event stream's Subscribe is a message, taken later).
        Adapter.toClassic(system).getEventStream().subscribe(Adapter.toClassic(freeing), DeadLetter.class);
        return system;
    }

    private static ActorSystem<Local> started(Config extra) {
        // Dispatchers for as many devices as a node may hold: configuration only, a thread is made when a device is first used.
        return ActorSystem.create(Behaviors.receive((ctx, m) -> {
            if (m instanceof Spawn<?> s) {
                spawn(ctx, s);
            } else if (m instanceof Stop s) {
                ctx.stop(s.child());
            }
            return Behaviors.same();
        }), "relay", extra.withFallback(StageHost.dispatchers(IntStream.range(0, StageHost.MAX_DEVICES).boxed().toList()))
                .withFallback(ConfigFactory.load()));
    }

    private static <T> void spawn(ActorContext<Local> ctx, Spawn<T> m) {
        try {
            m.spawned().complete(ctx.spawn(m.behavior(), m.name()));
        } catch (RuntimeException e) {
            m.spawned().completeExceptionally(e);
        }
    }

    static <T> ActorRef<T> spawnIn(ActorSystem<Local> system, Behavior<T> behavior, String name) {
        CompletableFuture<ActorRef<T>> spawned = new CompletableFuture<>();
        system.tell(new Spawn<>(behavior, name, spawned));
        try {
            return spawned.get(60, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while starting " + name, e);
        } catch (ExecutionException | TimeoutException e) {
            throw new IllegalStateException("could not start " + name + ": " + e, e);
        }
    }

    /** Stops an actor {@link #spawn} started. */
    void stop(ActorRef<?> child) {
        system.tell(new Stop(child));
    }

    /** Spawns an actor of this JVM (a pipeline's coordinator). */
    <T> ActorRef<T> spawn(Behavior<T> behavior, String name) {
        return spawnIn(system, behavior, name);
    }

    ActorSystem<?> system() {
        return system;
    }

    /** The host of the node that holds device {@code d} of {@code devices}. */
    abstract ActorRef<StageHost.Command> hostOf(int d, int devices);

    /** The node (its index, and its address in a cluster) that holds device d, for errors and traces. */
    public abstract String nodeOf(int d, int devices);

    /** Whether the node of this host is still there to run stages. */
    abstract boolean alive(ActorRef<?> host);

    /** This node's address as the others reach it ("host:port"), or "this JVM". */
    public abstract String address();

    /**
     * Forgets the nodes that are no longer there (lost: downed, or their JVM ended) and returns their names; the
     * devices they held go to the nodes that remain, in order, when the next pipeline is placed.
     */
    public List<String> dropLost() {
        List<String> lost = new ArrayList<>();
        for (ActorRef<StageHost.Command> h : hosts) {
            if (!alive(h)) {
                lost.add(name(h));
                hosts.remove(h);
            }
        }
        return lost;
    }

    /** After {@link #dropLost}: nodes that joined since take their place; returns their names (none but in a cluster). */
    public List<String> admitJoined() {
        return List.of();
    }

    /** How long {@link #admitJoined} waits when no node with devices is left. */
    public Duration joinTimeout() {
        return Duration.ZERO;
    }

    /** How many nodes hold devices. */
    public int deviceNodes() {
        return hosts.size();
    }

    /** Every node's host (a worker sees only its own). */
    List<ActorRef<StageHost.Command>> hosts() {
        return hosts;
    }

    /** An address as host:port. */
    static String hostPort(org.apache.pekko.actor.Address a) {
        return a.getHost().orElse("?") + ":" + a.getPort().map(String::valueOf).orElse("?");
    }

    static int indexOf(ActorRef<?> host) {
        return Integer.parseInt(host.path().name().substring("host-".length()));
    }

    /** A node as errors and history name it: its index and address. */
    static String name(ActorRef<StageHost.Command> host) {
        return "node " + indexOf(host) + " (" + hostPort(host.path().address()) + ")";
    }

    @Override
    public void close() {
        system.terminate();
        try {
            system.getWhenTerminated().toCompletableFuture().get(60, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (ExecutionException | TimeoutException e) {
            throw new IllegalStateException("the node's actors did not stop", e);
        }
    }
}
