package relay.actors;

import com.typesafe.config.Config;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Consumer;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;

/**
 * The coordinator's node of a cluster: it forms the cluster at its own address and hosts no devices. Its
 * {@link Roster} follows, for the node's whole life, which worker holds each index and refuses a worker that
 * comes with an index a live one holds; what it publishes is waited on here — for every worker at the start,
 * for a replacement when none is left — as it changes, not polled.
 */
final class CoordinatorNodes extends ClusterNodes {
    /** How long to wait for workers: at the start, and for a replacement when none is left. */
    private final Duration joinTimeout;
    /** The worker that holds each node index, as the roster last published it (guarded by this). */
    private Map<Integer, ActorRef<StageHost.Command>> holders = Map.of();

    private CoordinatorNodes(ActorSystem<Local> system, Duration joinTimeout) {
        super(system);
        this.joinTimeout = joinTimeout;
    }

    /** Waits until the hosts of the {@code nodes − 1} workers have joined; those that do not within the join timeout are an error naming them. */
    static CoordinatorNodes start(ClusterSettings settings, int nodes, Config extra, Consumer<String> refused) {
        if (settings.port() == 0) throw new IllegalArgumentException("relay.cluster.port: the coordinator's port must be set (the workers join it)");
        CoordinatorNodes coordinator = new CoordinatorNodes(system(extra.withFallback(settings.pekko("coordinator"))), settings.joinTimeout());
        try {
            spawnIn(coordinator.system, Roster.create(coordinator::published, refused), "roster");
            coordinator.hosts.addAll(coordinator.awaitWorkers(nodes - 1));
            return coordinator;
        } catch (RuntimeException e) {
            coordinator.system.terminate();
            throw e;
        }
    }

    private synchronized void published(Map<Integer, ActorRef<StageHost.Command>> now) {
        holders = now;
        notifyAll();
    }

    /** The holders once the roster has published a change or the deadline (System.nanoTime) has passed. */
    private synchronized Map<Integer, ActorRef<StageHost.Command>> holdersAfterChange(Map<Integer, ActorRef<StageHost.Command>> seen,
                                                                                      long deadline) {
        try {
            for (long left; holders == seen && (left = deadline - System.nanoTime()) > 0; ) {
                wait(Math.max(1, left / 1_000_000));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for the nodes to join", e);
        }
        return holders;
    }

    private synchronized Map<Integer, ActorRef<StageHost.Command>> holders() {
        return holders;
    }

    private List<ActorRef<StageHost.Command>> awaitWorkers(int workers) {
        long deadline = System.nanoTime() + joinTimeout.toNanos();
        for (Map<Integer, ActorRef<StageHost.Command>> seen = holders(); ; seen = holdersAfterChange(seen, deadline)) {
            Map<Integer, ActorRef<StageHost.Command>> found = seen;
            List<Integer> missing = IntStream.rangeClosed(1, workers).filter(i -> !found.containsKey(i)).boxed().toList();
            if (missing.isEmpty()) return IntStream.rangeClosed(1, workers).mapToObj(found::get).toList();
            if (System.nanoTime() > deadline) {
                throw new NodesUnavailable((missing.size() == 1 ? "node " : "nodes ") + missing.stream().map(String::valueOf)
                        .collect(Collectors.joining(", ")) + " of " + (workers + 1) + " did not join within " + joinTimeout.toSeconds()
                        + " s (relay.cluster.join-timeout); joined: node 0 (the coordinator, " + address() + ")"
                        + new TreeMap<>(found).entrySet().stream().map(e -> ", node " + e.getKey() + " (" + hostPort(e.getValue().path().address()) + ")")
                        .collect(Collectors.joining()));
            }
        }
    }

    /**
     * After {@link #dropLost}: workers that joined the cluster since the run began and hold their index — a
     * replacement started with {@code relay node --join} — take their place among the others, in order of their
     * node index (a replacement given the lost node's index holds its devices again). With no worker left this
     * waits for one up to the join timeout. Returns the names of those admitted.
     */
    @Override
    public List<String> admitJoined() {
        long deadline = System.nanoTime() + joinTimeout.toNanos();
        List<String> admitted = new ArrayList<>();
        for (Map<Integer, ActorRef<StageHost.Command>> found = holders(); ; found = holdersAfterChange(found, deadline)) {
            for (ActorRef<StageHost.Command> h : found.values()) {
                if (!hosts.contains(h) && alive(h)) {
                    hosts.add(h);
                    admitted.add(name(h));
                }
            }
            if (!hosts.isEmpty() || System.nanoTime() > deadline) break;
        }
        List<ActorRef<StageHost.Command>> ordered = hosts.stream().sorted(Comparator.comparingInt(Nodes::indexOf)).toList();
        hosts.clear();
        hosts.addAll(ordered);
        return admitted;
    }

    @Override
    public Duration joinTimeout() {
        return joinTimeout;
    }
}
