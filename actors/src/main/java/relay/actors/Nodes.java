package relay.actors;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.pekko.actor.NoSerializationVerificationNeeded;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;
import org.apache.pekko.cluster.ClusterEvent;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Leave;
import org.apache.pekko.cluster.typed.Subscribe;
import relay.transport.TensorChannel;

/**
 * The nodes a pipeline runs on, seen from this JVM: its actor system and the stage host of every node. On
 * one machine that is this JVM alone, whose host holds every device. In a cluster this JVM is the
 * coordinator's node, and each worker node — a JVM of its own, here or on another machine — offers its host
 * through Pekko's receptionist; the devices are split among the workers in order. The coordinator's
 * {@link Roster} says which worker holds each index, and refuses a worker that comes with an index a live one
 * holds. Each worker opens a {@link TensorChannel} beside the remoting, for the tensors its stages send to
 * stages of other nodes. A node outlives the pipelines it runs (a run restarted after a failure builds its
 * stages again on the same nodes).
 */
public final class Nodes implements AutoCloseable {
    /** Every node's stage host registers under this key; its name, host-i, says which node it is. */
    static final ServiceKey<StageHost.Command> HOSTS = ServiceKey.create(StageHost.Command.class, "relay-stage-host");

    /** What the guardian of a node's actor system does for this JVM's code: local requests, never sent elsewhere. */
    private sealed interface Local extends NoSerializationVerificationNeeded {}

    /** Spawn a behavior under the guardian and hand its reference back. */
    private record Spawn<T>(Behavior<T> behavior, String name, CompletableFuture<ActorRef<T>> spawned) implements Local {}

    /** Stop a child of the guardian (a pipeline's coordinator). */
    private record Stop(ActorRef<?> child) implements Local {}

    private final ActorSystem<Local> system;
    private final List<ActorRef<StageHost.Command>> hosts;
    private final boolean clustered;
    /** How long a coordinator waits for workers to join: at the start, and for a replacement when none is left. */
    private final Duration joinTimeout;
    /** On a worker: whether it was ever up in the cluster, and whether the coordinator left it (rather than it being cut off). */
    private final AtomicBoolean joined = new AtomicBoolean(), coordinatorLeft = new AtomicBoolean();
    /** On a worker: why the coordinator refused it, once it has. */
    private final AtomicReference<String> refusal = new AtomicReference<>();
    /** On the coordinator: the worker that holds each node index, as its roster last published it. */
    private final AtomicReference<Map<Integer, ActorRef<StageHost.Command>>> holders = new AtomicReference<>(Map.of());

    private Nodes(ActorSystem<Local> system, List<ActorRef<StageHost.Command>> hosts, boolean clustered, Duration joinTimeout) {
        this.system = system;
        this.joinTimeout = joinTimeout;
        this.hosts = new java.util.concurrent.CopyOnWriteArrayList<>(hosts);
        this.clustered = clustered;
    }

    private static Behavior<Local> guardian() {
        return Behaviors.receive((ctx, m) -> {
            if (m instanceof Spawn<?> s) {
                spawn(ctx, s);
            } else if (m instanceof Stop s) {
                ctx.stop(s.child());
            }
            return Behaviors.same();
        });
    }

    private static <T> void spawn(org.apache.pekko.actor.typed.javadsl.ActorContext<Local> ctx, Spawn<T> m) {
        try {
            m.spawned().complete(ctx.spawn(m.behavior(), m.name()));
        } catch (RuntimeException e) {
            m.spawned().completeExceptionally(e);
        }
    }

    /** Dispatchers for as many devices as a node may hold: configuration only, a thread is made when a device is first used. */
    private static Config base(Config extra) {
        return extra.withFallback(StageHost.dispatchers(IntStream.range(0, StageHost.MAX_DEVICES).boxed().toList()))
                .withFallback(ConfigFactory.load());
    }

    /** This JVM alone: one node, whose host holds every device. {@code extra} is layered over the defaults. */
    public static Nodes local(Config extra) {
        return local(extra, DeviceKind.CPU);
    }

    /** This JVM alone, its devices of this kind. */
    public static Nodes local(Config extra, DeviceKind kind) {
        ActorSystem<Local> system = ActorSystem.create(guardian(), "relay", base(extra));
        try {
            return new Nodes(system, List.of(spawnIn(system, StageHost.create(kind), "host-0")), false, Duration.ZERO);
        } catch (RuntimeException e) {
            system.terminate();
            throw e;
        }
    }

    /**
     * The coordinator's node of a cluster of {@code nodes} JVMs: it forms the cluster at its own address and
     * waits until the hosts of the other nodes have joined; those that do not within the join timeout are an
     * error naming them. A worker that comes with an index a live one holds, now or while a run goes on, is
     * refused and never given devices; {@code refused} is told of each, in a line.
     */
    public static Nodes coordinator(ClusterSettings settings, int nodes, Config extra, Consumer<String> refused) {
        if (settings.port() == 0) throw new IllegalArgumentException("relay.cluster.port: the coordinator's port must be set (the workers join it)");
        ActorSystem<Local> system = ActorSystem.create(guardian(), "relay", base(extra.withFallback(settings.pekko("coordinator"))));
        try {
            Nodes coordinator = new Nodes(system, List.of(), true, settings.joinTimeout());
            spawnIn(system, Roster.create(coordinator.holders, refused), "roster");
            coordinator.hosts.addAll(coordinator.awaitWorkers(nodes - 1));
            return coordinator;
        } catch (RuntimeException e) {
            system.terminate();
            throw e;
        }
    }

    /**
     * A worker node: it joins the coordinator's cluster and offers a stage host as node {@code index}. The
     * returned handle's {@link #awaitEnd} returns once the coordinator is gone (the run ended, or it was lost),
     * the node was downed, or the coordinator refused it and it left.
     */
    public static Nodes worker(ClusterSettings settings, int index, Config extra) {
        if (settings.join().isEmpty()) throw new IllegalArgumentException("relay.cluster.join: a worker needs the coordinator's host:port");
        if (index < 1) throw new IllegalArgumentException("a worker's node index is 1 or more (0 is the coordinator's), not " + index);
        Config c = extra.withFallback(settings.pekko("worker")).withFallback(ConfigFactory.parseString(
                "pekko.cluster.shutdown-after-unsuccessful-join-seed-nodes = " + settings.joinTimeout().toMillis() + "ms"));
        ActorSystem<Local> system = ActorSystem.create(guardian(), "relay", base(c));
        try {
            TensorChannel channel = TensorChannel.open(system, settings.host(), settings.maxMessage(), settings.sslContext());
            system.getWhenTerminated().thenRun(channel::close);
            Nodes node = new Nodes(system, List.of(), true, settings.joinTimeout());
            ActorRef<StageHost.Command> host = spawnIn(system, StageHost.create(channel, node::leaveRefused), "host-" + index);
            node.hosts.add(host);
            system.receptionist().tell(Receptionist.register(HOSTS, host));
            spawnIn(system, node.endWithCoordinator(), "watch");
            return node;
        } catch (RuntimeException e) {
            system.terminate();
            throw e;
        } catch (java.io.IOException e) {
            system.terminate();
            throw new java.io.UncheckedIOException("node " + index + " could not open its tensor channel on " + settings.host() + ": " + e.getMessage(), e);
        }
    }

    /** On a worker: notes when it is up, and ends it when the coordinator's node leaves (or is removed). */
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

    /** On a worker the coordinator refused: keeps why, and leaves the cluster, which ends the node. */
    private void leaveRefused(String why) {
        refusal.set(why);
        Cluster cluster = Cluster.get(system);
        cluster.manager().tell(Leave.create(cluster.selfMember().address()));
    }

    /** On a worker: whether it has joined the cluster (a stop before that need not wait for any run). */
    public boolean joined() {
        return joined.get();
    }

    /**
     * On a worker, once it has ended: why, in a line — the run it served ended, it never joined (the
     * coordinator was not there within the join timeout), it was cut off and downed, or the coordinator refused
     * it. Null when the run ended.
     */
    public String endedBecause() {
        if (refused()) return "refused by the coordinator: " + refusal.get();
        if (coordinatorLeft.get()) return null;
        return joined.get() ? "this node was cut off from the coordinator and downed" : "could not join the coordinator within the join timeout";
    }

    /** On a worker: whether it ended because the coordinator refused it (its index is another live node's). */
    public boolean refused() {
        return refusal.get() != null;
    }

    private List<ActorRef<StageHost.Command>> awaitWorkers(int workers) {
        long deadline = System.nanoTime() + joinTimeout.toNanos();
        while (true) {
            Map<Integer, ActorRef<StageHost.Command>> found = new TreeMap<>(holders.get());
            List<Integer> missing = IntStream.rangeClosed(1, workers).filter(i -> !found.containsKey(i)).boxed().toList();
            if (missing.isEmpty()) return IntStream.rangeClosed(1, workers).mapToObj(found::get).toList();
            if (System.nanoTime() > deadline) {
                throw new NodesUnavailable((missing.size() == 1 ? "node " : "nodes ") + missing.stream().map(String::valueOf)
                        .collect(Collectors.joining(", ")) + " of " + (workers + 1) + " did not join within " + joinTimeout.toSeconds()
                        + " s (relay.cluster.join-timeout); joined: node 0 (the coordinator, " + address(system) + ")"
                        + found.entrySet().stream().map(e -> ", node " + e.getKey() + " (" + hostPort(e.getValue().path().address()) + ")")
                        .collect(Collectors.joining()));
            }
            pause();
        }
    }

    private static void pause() {
        try {
            Thread.sleep(200);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for the nodes to join", e);
        }
    }

    private static String address(ActorSystem<?> system) {
        return hostPort(Cluster.get(system).selfMember().address());
    }

    /** An address as host:port. */
    static String hostPort(org.apache.pekko.actor.Address a) {
        return a.getHost().orElse("?") + ":" + a.getPort().map(String::valueOf).orElse("?");
    }

    static int indexOf(ActorRef<?> host) {
        return Integer.parseInt(host.path().name().substring("host-".length()));
    }

    private static <T> ActorRef<T> spawnIn(ActorSystem<Local> system, Behavior<T> behavior, String name) {
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

    /** The host of the node that holds device {@code d} of {@code devices}: this JVM's, or in a cluster the workers' in order. */
    ActorRef<StageHost.Command> hostOf(int d, int devices) {
        if (!clustered) return hosts.get(0);
        if (devices < hosts.size()) {
            throw new IllegalArgumentException(devices + " devices cannot be split over " + hosts.size() + " worker nodes; use at least "
                    + hosts.size());
        }
        return hosts.get(d * hosts.size() / devices);
    }

    /** The node (its index, and its address in a cluster) that holds device d, for errors and traces. */
    public String nodeOf(int d, int devices) {
        ActorRef<StageHost.Command> h = hostOf(d, devices);
        return clustered ? name(h) : "node " + indexOf(h);
    }

    /** A worker as errors and history name it: its index and address. */
    static String name(ActorRef<StageHost.Command> host) {
        return "node " + indexOf(host) + " (" + hostPort(host.path().address()) + ")";
    }

    /** Whether the node of this host is still a member of the cluster (always, on one machine). */
    boolean alive(ActorRef<?> host) {
        if (!clustered) return true;
        org.apache.pekko.actor.Address a = host.path().address();
        if (!a.hasGlobalScope()) return true;
        for (org.apache.pekko.cluster.Member m : Cluster.get(system).state().getMembers()) {
            if (m.address().equals(a)) return m.status() == org.apache.pekko.cluster.MemberStatus.up();
        }
        return false;
    }

    /**
     * Forgets the workers that are no longer members of the cluster (lost: downed, or their JVM ended) and
     * returns their names; the devices they held go to the workers that remain, in order, when the next
     * pipeline is placed. Nothing is lost on one machine.
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

    /**
     * After {@link #dropLost}: workers that joined the cluster since the run began and hold their index — a
     * replacement started with {@code relay node --join} — take their place among the others, in order of their
     * node index (a replacement given the lost node's index holds its devices again). With no worker left this
     * waits for one up to the join timeout. Returns the names of those admitted.
     */
    public List<String> admitJoined() {
        if (!clustered) return List.of();
        long deadline = System.nanoTime() + joinTimeout.toNanos();
        List<String> admitted = new ArrayList<>();
        while (true) {
            for (ActorRef<StageHost.Command> h : holders.get().values()) {
                if (!hosts.contains(h) && alive(h)) {
                    hosts.add(h);
                    admitted.add(name(h));
                }
            }
            if (!hosts.isEmpty() || System.nanoTime() > deadline) break;
            pause();
        }
        List<ActorRef<StageHost.Command>> ordered = hosts.stream().sorted(java.util.Comparator.comparingInt(Nodes::indexOf)).toList();
        hosts.clear();
        hosts.addAll(ordered);
        return admitted;
    }

    /** How long {@link #admitJoined} waits when no worker is left. */
    public Duration joinTimeout() {
        return joinTimeout;
    }

    /** How many nodes hold devices: this JVM, or the workers still in the cluster. */
    public int deviceNodes() {
        return hosts.size();
    }

    /** Every node's host (a worker sees only its own). */
    List<ActorRef<StageHost.Command>> hosts() {
        return hosts;
    }

    /**
     * Blocks until this node's actor system has ended (a worker: the coordinator left, or this node was downed),
     * or for at most {@code limit} (null: no limit); returns whether it ended.
     */
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

    /** This node's address as the others reach it ("host:port"), or "this JVM". */
    public String address() {
        return clustered ? address(system) : "this JVM";
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
