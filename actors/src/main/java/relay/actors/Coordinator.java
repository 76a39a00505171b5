package relay.actors;

import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.apache.pekko.actor.Address;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Terminated;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.cluster.ClusterEvent;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Subscribe;
import relay.stages.train.Batch;
import relay.transport.WireMessage;

/**
 * Owns the step. Its states are behaviours: not started; busy with one request at a time under a deadline;
 * ready between requests; broken after a fault, when it refuses every request rather than go on half-updated.
 * Each request is a class of its own: {@link StartingStages} has each stage built by its node's host and
 * connects them; {@link Stepping} runs a step — {@link BlockDraws} first, a norm-only pass when clipping by
 * global norm ({@link NormClip}), then the updating pass; {@link Evaluating} a forward-only pass;
 * {@link Gathering} and {@link RestoreRouting} what only the stages hold. Shards written in the background are
 * {@link ShardLedger}'s to count, snapshots held in the nodes' memory {@link SnapshotLedger}'s, and what a lost
 * node takes is {@link NodeLoss}'s to say: a stage's end, or its node downed (seen first). A pass starts with
 * the microbatches' tokens to the embedding and targets to the head ({@link Passes}); the coordinator never
 * touches a microbatch in between: the stages follow their devices' plans on their own. A failure or a timeout
 * ends the request with an error naming where.
 */
public final class Coordinator {

    /** What the coordinator takes from others. */
    public sealed interface Command extends Message, WireMessage {}

    /** Have every stage built (by the host of its node) and connected; the reply holds each stage's Ready event. */
    public record Start(List<StageSpec> specs, List<ActorRef<StageHost.Command>> hostOfStage, ActorRef<Gathered> replyTo)
            implements Command {}

    /**
     * Run one step over these microbatches; with {@code snapshotOf} (a step done, 1 or later; 0 for none) every stage
     * first takes its copy for the snapshot of that step in the nodes' memory, the state the step starts from, and
     * hands it to its holders (its node's host and the next node's) in the background while the step runs. The
     * holders report to the coordinator as the copies arrive ({@link SnapshotLedger}).
     */
    public record RunStep(List<Batch> microbatches, long snapshotOf, ActorRef<StepResult> replyTo) implements Command {
        public RunStep(List<Batch> microbatches, ActorRef<StepResult> replyTo) {
            this(microbatches, 0, replyTo);
        }
    }

    /** The loss of these batches, forward only, with the current weights; the step does not advance. */
    public record Evaluate(List<Batch> batches, ActorRef<StepResult> replyTo) implements Command {}

    /** What only the stages hold. */
    public enum What { WEIGHTS, OPTIMIZER_STATE, TRACE }

    /** Gather every stage's weights, optimizer state or trace (between steps). */
    public record Collect(What what, ActorRef<Gathered> replyTo) implements Command {}

    /** Hand a checkpoint's optimizer state to the stages whose parameters it belongs to; state no stage takes is an error. */
    public record Restore(Map<String, float[]> values, ActorRef<Gathered> replyTo) implements Command {}

    /**
     * Checkpoint {@code step}: every stage takes a copy of its state and writes it as its shard of {@code directory}
     * in the background; the reply comes once every stage has its copy (the next step may start).
     */
    public record WriteShards(long step, String directory, ActorRef<Gathered> replyTo) implements Command {}

    /**
     * The reply, once every stage has written its shard of checkpoint {@code step}: their
     * {@link StageEvent.ShardWritten} events, or why the checkpoint is not whole (a write failed, a stage is gone).
     * Answered outside the one-request-at-a-time order: steps go on while shards are written.
     */
    public record AwaitShards(long step, ActorRef<Gathered> replyTo) implements Command {}

    /**
     * Where the run can go on from after a lost node: the newest snapshot every stage still has a live holder of,
     * one {@link StageEvent.SnapshotHeld} per stage; none (an error) if there is no such step. Answered at once in
     * every state, a broken pipeline's included.
     */
    public record FindSnapshot(ActorRef<Gathered> replyTo) implements Command {}

    /** Have each stage's holder send it that stage's snapshot ({@code point}: {@link FindSnapshot}'s answer of an earlier pipeline). */
    public record RestoreSnapshot(List<StageEvent.SnapshotHeld> point, ActorRef<Gathered> replyTo) implements Command {
        public RestoreSnapshot {
            point = List.copyOf(point);
        }
    }

    /**
     * How a step (or an evaluation) went. On failure {@code error} says where, {@code failure} what kind, and
     * losses are partial.
     *
     * @param busyNanos           per device, compute time of its stages in the updating pass
     * @param bubble              the idle fraction of the updating pass: 1 − Σ busy / (devices × wall time)
     * @param coordinatorMessages the messages the coordinator took and sent for the step (its load grows with these)
     * @param coordinatorNanos    the time the coordinator spent handling them
     */
    public record StepResult(long step, double loss, double[] losses, long wallNanos, long[] busyNanos, double bubble,
                             long staleness, double gradNorm, long coordinatorMessages, long coordinatorNanos, String error,
                             StageEvent.Failure failure) implements WireMessage {
        public boolean ok() {
            return error == null;
        }
    }

    /** Every stage's answer to a request, by stage, or why there is none. */
    public record Gathered(List<StageEvent> events, String error, StageEvent.Failure failure) implements WireMessage {
        public boolean ok() {
            return error == null;
        }
    }

    /**
     * Everything the coordinator takes: its protocol, and its own messages — a stage's event through its adapter
     * (so stages know only {@link StageEvent}) and a request's deadline. Those two never leave this actor, so
     * they have no wire form.
     */
    private sealed interface Message permits Command, StageReport, Deadline, NodeDowned {}

    private record StageReport(StageEvent event) implements Message {}

    /** A node of the cluster was downed: its stages are gone, though their ends reach the coordinator only once it is removed. */
    private record NodeDowned(Address node) implements Message {}

    private record Deadline() implements Message {}

    /** The timer's key and message: one request is in progress at a time, so one deadline. */
    private static final Deadline DEADLINE = new Deadline();

    /** A coordinator for this placement; its first step is the config's (that step applies LISA's current draw whether or not it redraws). */
    public static Behavior<Command> create(PipelineConfig config, Placement placement) {
        return Behaviors.<Message>setup(ctx -> {
            // A node downed (a peer saw its process gone) ends a step at once, not when the node is removed after its heartbeats stop.
            if (ctx.getSystem().settings().config().getString("pekko.actor.provider").equals("cluster")) {
                Cluster.get(ctx.getSystem()).subscriptions().tell(Subscribe.create(
                        ctx.messageAdapter(ClusterEvent.MemberDowned.class, e -> new NodeDowned(e.member().address())), ClusterEvent.MemberDowned.class));
            }
            return Behaviors.withTimers(timers -> new Coordinator(ctx, timers, config, placement).notStarted());
        }).narrow();
    }

    private final ActorContext<Message> ctx;
    private final TimerScheduler<Message> timers;
    private final PipelineConfig config;
    private final Placement placement;
    private final ActorRef<StageEvent> events;
    private final Passes passes;
    private final BlockDraws draws;
    private final ShardLedger shards;
    private final SnapshotLedger snapshots;

    private Coordinator(ActorContext<Message> ctx, TimerScheduler<Message> timers, PipelineConfig config, Placement placement) {
        this.ctx = ctx;
        this.timers = timers;
        this.config = config;
        this.placement = placement;
        this.events = ctx.messageAdapter(StageEvent.class, StageReport::new);
        this.passes = new Passes(placement, config.firstStep());
        this.draws = new BlockDraws(config, placement);
        this.shards = new ShardLedger(placement);
        this.snapshots = new SnapshotLedger(placement.actors());
    }

    /** Before {@link Start}: there are no stages to ask anything. */
    private Behavior<Message> notStarted() {
        return Behaviors.receive(Message.class)
                .onMessage(AwaitShards.class, this::awaitShards)
                .onMessage(FindSnapshot.class, this::findSnapshot)
                .onMessage(Start.class, m -> begin(request(m, PipelineStages.NONE)))
                .onMessage(Command.class, m -> refuse(m, "the pipeline's stages are not started"))
                .onMessage(StageReport.class, m -> betweenRequests(m.event(), PipelineStages.NONE))
                .build();
    }

    /** The stages are connected and nothing is in progress: the next request begins. */
    private Behavior<Message> ready(PipelineStages stages) {
        return Behaviors.receive(Message.class)
                .onMessage(AwaitShards.class, this::awaitShards)
                .onMessage(FindSnapshot.class, this::findSnapshot)
                .onMessage(Start.class, m -> refuse(m, "the pipeline's stages are started already"))
                .onMessage(Command.class, m -> begin(request(m, stages)))
                .onMessage(StageReport.class, m -> betweenRequests(m.event(), stages))
                .onMessage(NodeDowned.class, m -> {
                    NodeLoss loss = NodeLoss.of(m.node(), stages, placement);
                    if (loss.ofHost()) return Behaviors.same();
                    lost(m.node(), loss);
                    return broken(stages, loss.reason(), StageEvent.Failure.NODE_LOST);
                })
                .onSignal(Terminated.class, t -> {
                    NodeLoss loss = NodeLoss.of(t.getRef(), stages, placement);
                    if (loss.ofHost()) return Behaviors.same();
                    lost(t.getRef().path().address(), loss);
                    return broken(stages, loss.reason(), StageEvent.Failure.NODE_LOST);
                })
                .build();
    }

    /** One request at a time, under its deadline: the stages' events go to it, and every other request is refused until it replied. */
    private Behavior<Message> busy(Request r) {
        // The stages' events first: a pass brings several a microbatch.
        return Behaviors.receive(Message.class)
                .onMessage(StageReport.class, m -> during(r, m.event()))
                .onMessage(AwaitShards.class, this::awaitShards)
                .onMessage(FindSnapshot.class, this::findSnapshot)
                .onMessage(Command.class, m -> refuse(m, "the pipeline is busy with " + r.what()))
                .onMessage(Deadline.class, m -> failed(r, r.what() + " timed out after " + r.deadline(config) + " with "
                        + r.outstanding().size() + " stage report(s) outstanding ("
                        + r.outstanding().stream().map(placement::stageName).collect(Collectors.joining(", ")) + ")", StageEvent.Failure.FAULT))
                .onMessage(NodeDowned.class, m -> {
                    NodeLoss loss = NodeLoss.of(m.node(), r.stages, placement);
                    if (loss.ofHost() && !r.reliesOn(m.node())) return Behaviors.same();
                    lost(m.node(), loss);
                    return failed(r, loss.ofHost() ? "node " + Nodes.hostPort(m.node()) + " was lost while " + r.what() : loss.reason(),
                            StageEvent.Failure.NODE_LOST);
                })
                .onSignal(Terminated.class, t -> {
                    NodeLoss loss = NodeLoss.of(t.getRef(), r.stages, placement);
                    lost(t.getRef().path().address(), loss);
                    return failed(r, loss.reason(), StageEvent.Failure.NODE_LOST);
                })
                .build();
    }

    /** After a fault the pipeline is not whole: every request is refused naming it; shards already being written are still answered for. */
    private Behavior<Message> broken(PipelineStages stages, String reason, StageEvent.Failure kind) {
        return Behaviors.receive(Message.class)
                .onMessage(AwaitShards.class, this::awaitShards)
                .onMessage(FindSnapshot.class, this::findSnapshot)
                .onMessage(Command.class, m -> refuse(m, "the pipeline stopped after an earlier failure: " + reason,
                        kind == StageEvent.Failure.NODE_LOST ? kind : StageEvent.Failure.FAULT))
                .onMessage(StageReport.class, m -> betweenRequests(m.event(), stages))
                .onMessage(NodeDowned.class, m -> {
                    lost(m.node(), new NodeLoss(reason, NodeLoss.of(m.node(), stages, placement).stages()));
                    return Behaviors.same();
                })
                .onSignal(Terminated.class, t -> {
                    lost(t.getRef().path().address(), new NodeLoss(reason, NodeLoss.of(t.getRef(), stages, placement).stages()));
                    return Behaviors.same();
                })
                .build();
    }

    /** The request a command asks for (its reply counts the coordinator's load from here). */
    private Request request(Command c, PipelineStages stages) {
        CoordinatorLoad load = new CoordinatorLoad();
        if (c instanceof Start m) return StartingStages.of(m, ctx, events, load);
        if (c instanceof RunStep m) return Stepping.of(m, stages, passes, draws, snapshots, config, load);
        if (c instanceof Evaluate m) return new Evaluating(m, stages, passes, load);
        if (c instanceof Collect m) return new Gathering.Collecting(m, stages, load);
        if (c instanceof Restore m) return new RestoreRouting(m, stages, load);
        if (c instanceof WriteShards m) return new Gathering.TakingShards(m, stages, load);
        if (c instanceof RestoreSnapshot m) return new Gathering.RestoringSnapshot(m, stages, load, events);
        throw new IllegalArgumentException(c + " is not a request");
    }

    private Behavior<Message> begin(Request r) {
        long since = System.nanoTime();
        try {
            timers.startSingleTimer(DEADLINE, r.deadline(config));
            return busy(r.begin());
        } finally {
            r.load.handled(since);
        }
    }

    private Behavior<Message> refuse(Command c, String why) {
        return refuse(c, why, StageEvent.Failure.FAULT);
    }

    /** Refused as {@code kind}: a pipeline broken by a lost node refuses as a lost node, so the caller goes on from the snapshot. */
    private Behavior<Message> refuse(Command c, String why, StageEvent.Failure kind) {
        request(c, PipelineStages.NONE).fail(why, kind);
        return Behaviors.same();
    }

    private Behavior<Message> during(Request r, StageEvent e) {
        long since = r.load.took();
        try {
            if (e instanceof StageEvent.ShardWritten w) {
                shards.written(w);
                return Behaviors.same();
            }
            if (e instanceof StageEvent.SnapshotHeld h) {
                snapshots.held(h);
                return Behaviors.same();
            }
            if (e instanceof StageEvent.Failed f) return failed(r, f.reason(), f.kind());
            Request next = r.event(e);
            if (next == r) return Behaviors.same();
            if (next != null) return busy(next);
            timers.cancel(DEADLINE);
            return ready(r.stages);
        } finally {
            r.load.handled(since);
        }
    }

    /** The request fails; bad input leaves a started pipeline as it was, anything else breaks it. */
    private Behavior<Message> failed(Request r, String reason, StageEvent.Failure kind) {
        timers.cancel(DEADLINE);
        r.fail(reason, kind);
        return kind == StageEvent.Failure.INPUT && r.survivesInputFailure() ? ready(r.stages) : broken(r.stages, reason, kind);
    }

    /** A stage's event between requests: a shard written is the ledger's; a failure breaks the pipeline, unless it was a message the stage could not take. */
    private Behavior<Message> betweenRequests(StageEvent e, PipelineStages stages) {
        if (e instanceof StageEvent.ShardWritten w) shards.written(w);
        if (e instanceof StageEvent.SnapshotHeld h) snapshots.held(h);
        if (!(e instanceof StageEvent.Failed f)) return Behaviors.same();
        ctx.getLog().warn("{} between requests: {}", placement.stageName(f.stage()), f.reason());
        return f.kind() == StageEvent.Failure.PROTOCOL ? Behaviors.same() : broken(stages, f.reason(), f.kind());
    }

    /** A node is gone: the shards its stages were writing, and the snapshots its host held. */
    private void lost(Address node, NodeLoss loss) {
        shards.gone(loss.stages(), loss.reason());
        if (node.hasGlobalScope()) snapshots.lost(node);
    }

    private Behavior<Message> findSnapshot(FindSnapshot m) {
        List<StageEvent.SnapshotHeld> point = snapshots.recovery();
        m.replyTo().tell(point.isEmpty() ? new Gathered(List.of(), "no snapshot in memory has every stage on a node left", StageEvent.Failure.FAULT)
                : new Gathered(List.copyOf(point), null, null));
        return Behaviors.same();
    }

    private Behavior<Message> awaitShards(AwaitShards m) {
        shards.await(m.step(), m.replyTo());
        return Behaviors.same();
    }
}
