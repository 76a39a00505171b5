package relay.actors;

import java.time.Duration;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Consumer;
import org.apache.pekko.actor.Address;
import org.apache.pekko.actor.NoSerializationVerificationNeeded;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.cluster.ClusterEvent;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Subscribe;

/**
 * On the coordinator's node, for its whole life — while it waits for the workers and while a run goes on:
 * which worker holds each node index. It follows the stage hosts the workers offer through the receptionist
 * and the cluster's membership. The first node up with an index holds it. Another that comes with the same
 * index is refused once the holder answers a ping: it is told why, reported, and never given devices. A
 * holder downed, leaving or removed frees its index for a replacement; one only unreachable keeps it until it
 * is downed (it may come back). A holder that does not answer is pinged again while it stays reachable: a
 * node killed a moment ago stays reachable until its heartbeats are missed, and its replacement must wait
 * for that, not be refused.
 */
final class Roster {
    private Roster() {}

    /** A host answers from the node's default dispatcher, not a device's: a node that is there answers well within this. */
    private static final Duration PING_TIMEOUT = Duration.ofSeconds(5);

    /** What the roster takes, all from this JVM: the receptionist's listings, the cluster's events, its pings' outcomes. */
    sealed interface Event extends NoSerializationVerificationNeeded {}

    /** The stage hosts registered now, reachable or not. */
    record Listed(Set<ActorRef<StageHost.Command>> hosts) implements Event {}

    /** A member's status or reachability changed. */
    record Membership(ClusterEvent.ClusterDomainEvent change) implements Event {}

    /** Whether the holder of a newcomer's index answered a ping in time. */
    record Pinged(ActorRef<StageHost.Command> newcomer, ActorRef<StageHost.Command> holder, boolean answered) implements Event {}

    /**
     * The roster, which publishes each index's holder to {@code holders} after every change and tells
     * {@code refused} of each node it refuses, in a line.
     */
    static Behavior<Event> create(Consumer<Map<Integer, ActorRef<StageHost.Command>>> holders, Consumer<String> refused) {
        return Behaviors.setup(ctx -> {
            ctx.getSystem().receptionist().tell(Receptionist.subscribe(Nodes.HOSTS,
                    ctx.messageAdapter(Receptionist.Listing.class, l -> new Listed(l.getAllServiceInstances(Nodes.HOSTS)))));
            Cluster cluster = Cluster.get(ctx.getSystem());
            cluster.subscriptions().tell(Subscribe.create(ctx.messageAdapter(ClusterEvent.MemberEvent.class, Membership::new),
                    ClusterEvent.MemberEvent.class));
            cluster.subscriptions().tell(Subscribe.create(ctx.messageAdapter(ClusterEvent.ReachabilityEvent.class, Membership::new),
                    ClusterEvent.ReachabilityEvent.class));
            return new State(ctx, holders, refused).behavior();
        });
    }

    /** The roster's view, the actor's alone; only the holders leave it, as an immutable copy. */
    private static final class State {
        private final ActorContext<Event> ctx;
        private final Consumer<Map<Integer, ActorRef<StageHost.Command>>> published;
        private final Consumer<String> refused;
        private final Map<Integer, ActorRef<StageHost.Command>> holders = new TreeMap<>();
        /** Members as the cluster's events tell them: the cluster's own view may lag behind the event in hand. */
        private final Map<Address, Member> members = new HashMap<>();
        private final Set<Address> unreachable = new HashSet<>();
        private final Set<ActorRef<StageHost.Command>> pinging = new HashSet<>(), refusedHosts = new HashSet<>();
        private Set<ActorRef<StageHost.Command>> listed = Set.of();

        State(ActorContext<Event> ctx, Consumer<Map<Integer, ActorRef<StageHost.Command>>> published, Consumer<String> refused) {
            this.ctx = ctx;
            this.published = published;
            this.refused = refused;
        }

        Behavior<Event> behavior() {
            return Behaviors.receive(Event.class)
                    .onMessage(Listed.class, m -> {
                        listed = m.hosts();
                        refusedHosts.retainAll(listed);
                        return update();
                    })
                    .onMessage(Membership.class, m -> {
                        note(m.change());
                        return update();
                    })
                    .onMessage(Pinged.class, this::pinged)
                    .build();
        }

        private void note(ClusterEvent.ClusterDomainEvent change) {
            if (change instanceof ClusterEvent.MemberRemoved r) {
                members.remove(r.member().address());
                unreachable.remove(r.member().address());
            } else if (change instanceof ClusterEvent.MemberEvent m) {
                members.put(m.member().address(), m.member());
            } else if (change instanceof ClusterEvent.UnreachableMember u) {
                unreachable.add(u.member().address());
            } else if (change instanceof ClusterEvent.ReachableMember r) {
                unreachable.remove(r.member().address());
            }
        }

        private boolean up(ActorRef<?> host) {
            Member m = members.get(host.path().address());
            return m != null && (m.status() == MemberStatus.up() || m.status() == MemberStatus.weaklyUp());
        }

        /** Frees the indexes of holders no longer up, then lets each node up claim its index, the oldest first. */
        private Behavior<Event> update() {
            holders.values().removeIf(h -> !up(h));
            listed.stream().filter(h -> up(h) && !holders.containsValue(h) && !refusedHosts.contains(h))
                    .sorted(Comparator.comparing(h -> members.get(h.path().address()), Member.ageOrdering()))
                    .forEach(this::claim);
            published.accept(Map.copyOf(holders));
            return Behaviors.same();
        }

        /** The node holds its index if none does; otherwise the holder, unless unreachable, is pinged (once at a time). */
        private void claim(ActorRef<StageHost.Command> node) {
            ActorRef<StageHost.Command> holder = holders.putIfAbsent(Nodes.indexOf(node), node);
            if (holder != null && !unreachable.contains(holder.path().address()) && pinging.add(node)) {
                ctx.ask(StageHost.Pong.class, holder, PING_TIMEOUT, StageHost.Ping::new, (pong, silent) -> new Pinged(node, holder, pong != null));
            }
        }

        /** The holder answered, and still holds the index: the newcomer is refused. Otherwise it claims again. */
        private Behavior<Event> pinged(Pinged m) {
            pinging.remove(m.newcomer());
            if (m.answered() && m.holder().equals(holders.get(Nodes.indexOf(m.newcomer()))) && up(m.newcomer())) {
                refuse(m.newcomer(), m.holder());
            }
            return update();
        }

        private void refuse(ActorRef<StageHost.Command> node, ActorRef<StageHost.Command> holder) {
            refusedHosts.add(node);
            String why = "index " + Nodes.indexOf(node) + " is held by " + Nodes.name(holder);
            node.tell(new StageHost.Refuse(why));
            refused.accept("node " + Nodes.indexOf(node) + " at " + Nodes.hostPort(node.path().address()) + " refused: " + why);
        }
    }
}
