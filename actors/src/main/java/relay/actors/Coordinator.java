package relay.actors;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Terminated;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import relay.optimizers.LisaPolicy;
import relay.optimizers.LowRankTerms;
import relay.stages.train.Batch;
import relay.transport.WireMessage;

/**
 * Owns the step. It has each stage built from its spec by the stage's host and connects them; then, one
 * request at a time, it runs steps — LISA's draw applied by freeze/unfreeze messages acknowledged before the
 * step starts, a norm-only pass first when clipping by global norm, then the updating pass — evaluations
 * (a forward-only pass), and gathers what only the stages hold (weights, optimizer state, traces). It
 * starts each pass by handing the microbatches' tokens to the embedding and targets to the head and never
 * touches a microbatch in between: the stages follow their devices' plans on their own. A failure or a
 * timeout ends the request with an error naming where; after a fault it refuses further steps rather than
 * go on half-updated.
 */
public final class Coordinator extends AbstractBehavior<Coordinator.Command> {

    /** What the coordinator takes. */
    public sealed interface Command extends WireMessage {}

    /** Have every stage built (by the host of its node) and connected; the reply holds each stage's Ready event. */
    public record Start(List<StageSpec> specs, List<ActorRef<StageHost.Command>> hostOfStage, ActorRef<Gathered> replyTo)
            implements Command {}

    /** Run one step over these microbatches. */
    public record RunStep(List<Batch> microbatches, ActorRef<StepResult> replyTo) implements Command {}

    /** The loss of these batches, forward only, with the current weights; the step does not advance. */
    public record Evaluate(List<Batch> batches, ActorRef<StepResult> replyTo) implements Command {}

    /** What only the stages hold. */
    public enum What { WEIGHTS, OPTIMIZER_STATE, TRACE }

    /** Gather every stage's weights, optimizer state or trace (between steps). */
    public record Collect(What what, ActorRef<Gathered> replyTo) implements Command {}

    /** Hand a checkpoint's optimizer state to the stages whose parameters it belongs to; state no stage takes is an error. */
    public record Restore(java.util.Map<String, float[]> values, ActorRef<Gathered> replyTo) implements Command {}

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

    /** A stage's event (through the coordinator's adapter, so stages know only {@link StageEvent}). */
    public record FromStage(StageEvent event) implements Command {}

    /** The request numbered so has taken too long. */
    public record Timeout(long request) implements Command {}

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

    /** A coordinator for this placement; its first step is the config's (that step applies LISA's current draw whether or not it redraws). */
    public static Behavior<Command> create(PipelineConfig config, Placement placement) {
        return Behaviors.setup(ctx -> Behaviors.withTimers(timers -> new Coordinator(ctx, timers, config, placement)));
    }

    private final TimerScheduler<Command> timers;
    private final PipelineConfig config;
    private final Placement placement;
    private final LisaPolicy lisa;
    private final ActorRef<StageEvent> events;
    private final String[] names;
    private List<ActorRef<StageCommand>> stages;
    private List<List<String>> parameters;

    private long step;
    private boolean lisaApplied;
    /** The step whose seed drew the blocks' RSO subspaces (they are built with step 0's). */
    private long drawnAt;
    private long passes;
    private long requests;
    private Request request;
    private String broken;
    /** Shards reported written, by checkpoint step, and who waits for each checkpoint's. */
    private final Map<Long, List<StageEvent>> shardsWritten = new HashMap<>();
    private final Map<Long, ActorRef<Gathered>> awaitingShards = new HashMap<>();
    /** The stages that are gone (their node lost, or stopped). */
    private final Set<Integer> gone = new HashSet<>();

    private Coordinator(ActorContext<Command> ctx, TimerScheduler<Command> timers, PipelineConfig config, Placement placement) {
        super(ctx);
        this.timers = timers;
        this.config = config;
        this.placement = placement;
        this.step = config.firstStep();
        int blocks = placement.stages() - 2;
        this.lisa = config.lisa() ? LisaPolicy.of(blocks, config.settings()) : null;
        this.events = ctx.messageAdapter(StageEvent.class, FromStage::new);
        this.names = new String[placement.stages()];
        for (int s = 0; s < names.length; s++) names[s] = StageSpec.name(s, blocks);
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Start.class, m -> begin(new Starting(m)))
                .onMessage(RunStep.class, m -> begin(new Stepping(m)))
                .onMessage(Evaluate.class, m -> begin(new Evaluating(m)))
                .onMessage(Collect.class, m -> begin(new Collecting(m)))
                .onMessage(Restore.class, m -> begin(new Restoring(m)))
                .onMessage(WriteShards.class, m -> begin(new TakingShards(m)))
                .onMessage(AwaitShards.class, this::onAwaitShards)
                .onMessage(FromStage.class, this::onEvent)
                .onMessage(Timeout.class, this::onTimeout)
                .onSignal(Terminated.class, this::onStageGone)
                .build();
    }

    /** Messages the coordinator took and sent, and its time handling them, since the request in progress began. */
    private long messages, handlingNanos;

    /** One request at a time, each with its own deadline; none after a fault, or before the stages are started. */
    private Behavior<Command> begin(Request r) {
        long t0 = System.nanoTime();
        messages = 1;
        handlingNanos = 0;
        try {
            return beginTimed(r);
        } finally {
            handlingNanos += System.nanoTime() - t0;
        }
    }

    private Behavior<Command> beginTimed(Request r) {
        String refusal = request != null ? "the pipeline is busy with " + request.what()
                : broken != null ? "the pipeline stopped after an earlier failure: " + broken
                : stages == null && !(r instanceof Starting) ? "the pipeline's stages are not started"
                : null;
        if (refusal != null) {
            r.reply(refusal, StageEvent.Failure.FAULT);
            return this;
        }
        request = r;
        timers.startSingleTimer(new Timeout(++requests), deadline(r));
        r.begin();
        return this;
    }

    /** A pass (a step's, an evaluation's) has the step timeout; building and gathering have the longer request timeout. */
    private Duration deadline(Request r) {
        return r instanceof PassRequest ? config.stepTimeout() : config.requestTimeout();
    }

    private void end() {
        request = null;
        timers.cancelAll();
    }

    private Behavior<Command> onEvent(FromStage m) {
        long t0 = System.nanoTime();
        messages++;
        try {
            return handle(m.event());
        } finally {
            handlingNanos += System.nanoTime() - t0;
        }
    }

    private Behavior<Command> handle(StageEvent e) {
        if (e instanceof StageEvent.ShardWritten w) {
            shardsWritten.computeIfAbsent(w.step(), k -> new ArrayList<>()).add(w);
            answerShards(w.step());
            return this;
        }
        if (e instanceof StageEvent.Failed f && request == null) {
            getContext().getLog().warn("{} between requests: {}", names[f.stage()], f.reason());
            if (f.kind() != StageEvent.Failure.PROTOCOL) broken = f.reason();
            return this;
        }
        if (request == null) return this;
        if (e instanceof StageEvent.Failed f) {
            fail(f.reason(), f.kind());
        } else {
            request.event(e);
        }
        return this;
    }

    private void fail(String reason, StageEvent.Failure kind) {
        if (kind != StageEvent.Failure.INPUT || request instanceof Starting) {
            broken = reason;
        }
        Request r = request;
        end();
        r.reply(reason, kind);
    }

    /**
     * A stage is gone — its node was lost (downed after it became unreachable, or its JVM ended) or the stage
     * stopped: the request in progress fails naming the node and every stage it held, and the pipeline is broken.
     */
    private Behavior<Command> onStageGone(Terminated t) {
        int stage = stages == null ? -1 : stages.indexOf(t.getRef());
        org.apache.pekko.actor.Address node = t.getRef().path().address();
        if (stage < 0) {
            // A host: its node is gone before its stages were built.
            String reason = "node " + Nodes.hostPort(node) + " was lost while its stages were being built";
            if (request != null) fail(reason, StageEvent.Failure.NODE_LOST);
            return this;
        }
        // A node lost takes all its stages; in one JVM a stage that stopped is gone alone.
        List<String> lost = new ArrayList<>();
        for (int s = 0; s < stages.size(); s++) {
            if (!stages.get(s).path().address().equals(node)) continue;
            lost.add(names[s]);
            if (node.hasGlobalScope()) gone.add(s);
        }
        gone.add(stage);
        String reason = node.hasGlobalScope() ? "node " + Nodes.hostPort(node) + " was lost, and with it " + String.join(", ", lost)
                : names[stage] + " stopped";
        if (request != null) {
            fail(reason, StageEvent.Failure.NODE_LOST);
        } else if (broken == null) {
            broken = reason;
        }
        List.copyOf(awaitingShards.keySet()).forEach(this::answerShards);
        return this;
    }

    private Behavior<Command> onAwaitShards(AwaitShards m) {
        awaitingShards.put(m.step(), m.replyTo());
        answerShards(m.step());
        return this;
    }

    /**
     * Answers who waits for checkpoint {@code step}'s shards once every stage is done with its own: all written, or
     * one could not be — its write failed, or its stage is gone (a lost node) before it was written. Waiting for
     * the others' ends too lets the caller clear an incomplete checkpoint without a stage still writing into it. A
     * copy taken before a later step failed is still written: the checkpoint is of the step boundary it was taken at.
     */
    private void answerShards(long step) {
        ActorRef<Gathered> to = awaitingShards.get(step);
        if (to == null) return;
        List<StageEvent> written = shardsWritten.getOrDefault(step, List.of());
        Set<Integer> reported = written.stream().map(StageEvent::stage).collect(Collectors.toSet());
        String error = null;
        StageEvent.Failure failure = StageEvent.Failure.NODE_LOST;
        for (int s = 0; s < placement.stages(); s++) {
            if (reported.contains(s)) continue;
            if (stages == null || !gone.contains(s)) return;
            if (error == null) error = names[s] + " is gone (" + broken + ") before it wrote its shard";
        }
        if (error == null) {
            error = written.stream().map(e -> ((StageEvent.ShardWritten) e).error()).filter(Objects::nonNull).findFirst().orElse(null);
            failure = StageEvent.Failure.FAULT;
        }
        awaitingShards.remove(step);
        shardsWritten.remove(step);
        to.tell(error == null ? new Gathered(written, null, null) : new Gathered(List.of(), error, failure));
    }

    private Behavior<Command> onTimeout(Timeout t) {
        if (request != null && t.request() == requests) {
            fail(request.what() + " timed out after " + deadline(request) + " with " + request.outstanding().size()
                    + " stage report(s) outstanding (" + request.outstanding().stream().map(s -> names[s]).collect(Collectors.joining(", "))
                    + ")", StageEvent.Failure.FAULT);
        }
        return this;
    }

    private void tellAll(StageCommand c) {
        stages.forEach(s -> s.tell(c));
    }

    /** A request in progress: it takes the stages' events, says which stages it still waits for, and replies once. */
    private interface Request {
        void begin();

        void event(StageEvent e);

        String what();

        Set<Integer> outstanding();

        void reply(String error, StageEvent.Failure kind);
    }

    /** The stages a request still waits for. */
    private Set<Integer> allStages() {
        Set<Integer> all = new TreeSet<>();
        for (int s = 0; s < placement.stages(); s++) all.add(s);
        return all;
    }

    /** Stages are spawned and report Ready; then each is connected to all and reports Connected. */
    private final class Starting implements Request {
        private final Start start;
        private final Set<Integer> waiting = allStages();
        private final StageEvent[] ready = new StageEvent[placement.stages()];
        private boolean connecting;

        Starting(Start start) {
            this.start = start;
        }

        @Override
        public void begin() {
            start.hostOfStage().stream().distinct().forEach(getContext()::watch);
            for (int s = 0; s < start.specs().size(); s++) start.hostOfStage().get(s).tell(new StageHost.Spawn(start.specs().get(s), events));
        }

        @Override
        public void event(StageEvent e) {
            if (!connecting && e instanceof StageEvent.Ready r) {
                ready[r.stage()] = r;
                waiting.remove(r.stage());
                if (!waiting.isEmpty()) return;
                List<ActorRef<StageCommand>> refs = new ArrayList<>();
                List<List<String>> params = new ArrayList<>();
                List<String> channels = new ArrayList<>();
                for (StageEvent x : ready) {
                    StageEvent.Ready built = (StageEvent.Ready) x;
                    refs.add(built.ref());
                    params.add(built.parameters());
                    channels.add(built.channel());
                }
                stages = List.copyOf(refs);
                parameters = List.copyOf(params);
                stages.forEach(getContext()::watch);
                connecting = true;
                start.hostOfStage().stream().distinct().forEach(getContext()::unwatch);
                waiting.addAll(allStages());
                tellAll(new StageCommand.Connect(stages, channels));
            } else if (connecting && e instanceof StageEvent.Connected c) {
                waiting.remove(c.stage());
                if (!waiting.isEmpty()) return;
                end();
                start.replyTo().tell(new Gathered(Arrays.asList(ready), null, null));
            }
        }

        @Override
        public String what() {
            return connecting ? "connecting the stages" : "building the stages";
        }

        @Override
        public Set<Integer> outstanding() {
            return waiting;
        }

        @Override
        public void reply(String error, StageEvent.Failure kind) {
            start.replyTo().tell(new Gathered(List.of(), error, kind));
        }
    }

    /** Starts a pass over the microbatches: tokens to the embedding, targets to the head. */
    private Position startPass(List<Batch> mbs, Pass pass, float clip) {
        long id = ++passes;
        Position first = null;
        for (int j = 0; j < mbs.size(); j++) {
            Batch b = mbs.get(j);
            Position pos = new Position(step, pass, id, j, mbs.size(), b.batch(), b.seq(), clip);
            if (first == null) first = pos;
            stages.get(0).tell(new StageCommand.Tokens(pos, b.inputs(), b.positions()));
            stages.get(stages.size() - 1).tell(new StageCommand.Targets(pos, b.targets()));
            messages += 2;
        }
        return first;
    }

    /** The shared bookkeeping of a pass: losses by microbatch, and each stage's share reported. */
    private abstract class PassRequest implements Request {
        final Set<Integer> waiting = new TreeSet<>();
        Position pass;
        double[] losses;
        long[] busy;
        long staleness;
        double normSquared;
        long start;

        void run(List<Batch> mbs, Pass kind, float clip) {
            waiting.addAll(allStages());
            losses = new double[mbs.size()];
            Arrays.fill(losses, Double.NaN);
            busy = new long[placement.devices()];
            staleness = 0;
            normSquared = 0;
            start = System.nanoTime();
            pass = startPass(mbs, kind, clip);
        }

        /** Takes the pass's losses and shares; returns true once every stage's share is in. */
        boolean passEvent(StageEvent e) {
            if (e instanceof StageEvent.Loss l && l.pos().samePass(pass)) {
                losses[l.pos().microbatch()] = l.loss();
            } else if (e instanceof StageEvent.PassDone d && d.pos().samePass(pass)) {
                normSquared += d.normSquared();
                busy[placement.device(d.stage())] += d.busyNanos();
                staleness = Math.max(staleness, d.staleness());
                waiting.remove(d.stage());
                return waiting.isEmpty();
            }
            return false;
        }

        @Override
        public Set<Integer> outstanding() {
            return waiting;
        }

        /**
         * The mean loss: a step's as a compensated mean of its microbatches' (what its metrics have always
         * shown), an evaluation's as the plain sum over its batches in order divided by their count (as the
         * plain loop evaluates), so that neither number depends on where the model runs.
         */
        double meanLoss() {
            if (pass.pass() != Pass.EVAL) return Arrays.stream(losses).average().orElse(Double.NaN);
            double sum = 0;
            for (double l : losses) sum += l;
            return sum / losses.length;
        }
    }

    /** A step: LISA's draw, then a norm pass if clipping by global norm, then the updating pass. */
    private final class Stepping extends PassRequest {
        private final RunStep run;
        private double gradNorm = Double.NaN;
        private boolean drawing;

        Stepping(RunStep run) {
            this.run = run;
        }

        /** LISA's draw and RSO's redraw go to the blocks first when this step makes one; the step starts once every block has taken it. */
        @Override
        public void begin() {
            int blocks = placement.stages() - 2;
            if (lisa != null && (!lisaApplied || lisa.redrawsAt((int) step))) {
                lisaApplied = true;
                int[] active = lisa.activeBlocks((int) step);
                for (int b = 0; b < blocks; b++) {
                    waiting.add(b + 1);
                    stages.get(b + 1).tell(new StageCommand.SetTrainable(step, Arrays.binarySearch(active, b) >= 0));
                    messages++;
                }
            }
            long draw = LowRankTerms.drawFor(step, config.settings().rsoPeriod());
            if (config.method().redrawsSubspaces() && draw != drawnAt) {
                drawnAt = draw;
                for (int b = 0; b < blocks; b++) {
                    waiting.add(b + 1);
                    stages.get(b + 1).tell(new StageCommand.Redraw(step, draw, step == draw));
                    messages++;
                }
            }
            drawing = !waiting.isEmpty();
            if (!drawing) firstPass();
        }

        private void firstPass() {
            run(run.microbatches(), config.settings().clipping().byNorm() ? Pass.NORM : Pass.TRAIN, 1f);
        }

        @Override
        public void event(StageEvent e) {
            if (drawing) {
                boolean taken = e instanceof StageEvent.TrainableSet t ? t.step() == step : e instanceof StageEvent.Redrawn r && r.step() == step;
                if (taken && waiting.remove(e.stage()) && waiting.isEmpty()) {
                    drawing = false;
                    firstPass();
                }
                return;
            }
            if (!passEvent(e)) return;
            if (pass.pass() == Pass.NORM) {
                gradNorm = Math.sqrt(normSquared);
                run(run.microbatches(), Pass.TRAIN, config.settings().clipping().factor(gradNorm));
                return;
            }
            long wall = System.nanoTime() - start;
            double busySum = Arrays.stream(busy).sum();
            StepResult r = new StepResult(step, meanLoss(), losses, wall, busy, 1 - busySum / (placement.devices() * (double) wall),
                    staleness, gradNorm, messages + 1, handlingNanos, null, null);
            end();
            step++;
            run.replyTo().tell(r);
        }

        @Override
        public String what() {
            return "step " + step + (pass != null && pass.pass() == Pass.NORM ? " (norm pass)" : drawing ? (lisa != null ? " (LISA's draw)" : " (RSO's redraw)") : "");
        }

        @Override
        public void reply(String error, StageEvent.Failure kind) {
            run.replyTo().tell(new StepResult(step, Double.NaN, losses == null ? new double[0] : losses, 0, new long[0], Double.NaN,
                    0, Double.NaN, messages + 1, handlingNanos, error, kind));
        }
    }

    /** A forward-only pass: the head reports each batch's loss. */
    private final class Evaluating extends PassRequest {
        private final Evaluate evaluate;

        Evaluating(Evaluate evaluate) {
            this.evaluate = evaluate;
        }

        @Override
        public void begin() {
            run(evaluate.batches(), Pass.EVAL, 1f);
        }

        @Override
        public void event(StageEvent e) {
            if (!passEvent(e)) return;
            StepResult r = new StepResult(step, meanLoss(), losses, System.nanoTime() - start, busy, Double.NaN, 0, Double.NaN,
                    messages + 1, handlingNanos, null, null);
            end();
            evaluate.replyTo().tell(r);
        }

        @Override
        public String what() {
            return "the evaluation before step " + step;
        }

        @Override
        public void reply(String error, StageEvent.Failure kind) {
            evaluate.replyTo().tell(new StepResult(step, Double.NaN, new double[0], 0, new long[0], Double.NaN, 0, Double.NaN,
                    messages + 1, handlingNanos, error, kind));
        }
    }

    /** Every stage's answer, of the kind asked for: one event, or parts until the one marked last. */
    private abstract class Gathering implements Request {
        final Set<Integer> waiting = allStages();
        final List<List<StageEvent>> answers = new ArrayList<>();
        private final ActorRef<Gathered> replyTo;

        Gathering(ActorRef<Gathered> replyTo) {
            this.replyTo = replyTo;
            for (int s = 0; s < placement.stages(); s++) answers.add(new ArrayList<>());
        }

        abstract boolean answers(StageEvent e);

        /** Why the answers do not do, or null. */
        String check(List<StageEvent> all) {
            return null;
        }

        @Override
        public void event(StageEvent e) {
            if (!answers(e) || !waiting.contains(e.stage())) return;
            answers.get(e.stage()).add(e);
            boolean complete = e instanceof StageEvent.Weights w ? w.last() : !(e instanceof StageEvent.OptimizerState o) || o.last();
            if (complete) waiting.remove(e.stage());
            if (!waiting.isEmpty()) return;
            List<StageEvent> all = answers.stream().flatMap(List::stream).toList();
            String error = check(all);
            end();
            replyTo.tell(new Gathered(error == null ? all : List.of(), error, error == null ? null : StageEvent.Failure.INPUT));
        }

        @Override
        public Set<Integer> outstanding() {
            return waiting;
        }

        @Override
        public void reply(String error, StageEvent.Failure kind) {
            replyTo.tell(new Gathered(List.of(), error, kind));
        }
    }

    private final class Collecting extends Gathering {
        private final What what;

        Collecting(Collect c) {
            super(c.replyTo());
            this.what = c.what();
        }

        @Override
        public void begin() {
            tellAll(switch (what) {
                case WEIGHTS -> new StageCommand.CollectWeights();
                case OPTIMIZER_STATE -> new StageCommand.CollectState();
                case TRACE -> new StageCommand.CollectTrace();
            });
        }

        @Override
        boolean answers(StageEvent e) {
            return switch (what) {
                case WEIGHTS -> e instanceof StageEvent.Weights;
                case OPTIMIZER_STATE -> e instanceof StageEvent.OptimizerState;
                case TRACE -> e instanceof StageEvent.Trace;
            };
        }

        @Override
        public String what() {
            return "collecting the stages' " + what.name().toLowerCase(java.util.Locale.ROOT).replace('_', ' ');
        }
    }

    /** Each stage takes its copy for a checkpoint and reports so; its shard is written after the reply. */
    private final class TakingShards extends Gathering {
        private final WriteShards write;

        TakingShards(WriteShards write) {
            super(write.replyTo());
            this.write = write;
        }

        @Override
        public void begin() {
            tellAll(new StageCommand.WriteShard(write.step(), write.directory()));
        }

        @Override
        boolean answers(StageEvent e) {
            return e instanceof StageEvent.ShardTaken t && t.step() == write.step();
        }

        @Override
        public String what() {
            return "taking the stages' copies for checkpoint " + write.step();
        }
    }

    /** Each stage gets the state of its own parameters ("parameter/role" keys); every key must be taken by some stage. */
    private final class Restoring extends Gathering {
        private final Map<String, float[]> values;

        Restoring(Restore r) {
            super(r.replyTo());
            this.values = r.values();
        }

        @Override
        public void begin() {
            for (int s = 0; s < stages.size(); s++) {
                Set<String> mine = new HashSet<>(parameters.get(s));
                Map<String, float[]> part = new java.util.LinkedHashMap<>();
                values.forEach((k, v) -> {
                    if (mine.contains(k.substring(0, Math.max(0, k.indexOf('/'))))) part.put(k, v);
                });
                List<List<TensorPart>> groups = TensorPart.split(part, TensorPart.MESSAGE_FLOATS);
                for (int g = 0; g < groups.size(); g++) stages.get(s).tell(new StageCommand.RestoreState(groups.get(g), g == groups.size() - 1));
            }
        }

        @Override
        boolean answers(StageEvent e) {
            return e instanceof StageEvent.Restored;
        }

        @Override
        String check(List<StageEvent> all) {
            Set<String> taken = new HashSet<>();
            for (StageEvent e : all) {
                StageEvent.Restored r = (StageEvent.Restored) e;
                if (r.error() != null) return "optimizer state: " + r.error();
                taken.addAll(r.held());
            }
            List<String> left = values.keySet().stream().filter(k -> !taken.contains(k)).sorted().limit(5).toList();
            return left.isEmpty() ? null : "optimizer state no stage of this pipeline holds: " + left;
        }

        @Override
        public String what() {
            return "restoring the optimizer state";
        }
    }
}
