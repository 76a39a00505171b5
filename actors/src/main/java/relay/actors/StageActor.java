package relay.actors;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.NoSerializationVerificationNeeded;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import relay.stages.layers.GradientSink;
import relay.stages.layers.Parameter;
import relay.stages.layers.TransformerBlock;
import relay.stages.memory.Category;
import relay.stages.model.Embedding;
import relay.stages.model.LmHead;
import relay.stages.tensor.Device;
import relay.stages.tensor.Tensor;
import relay.transport.TensorPayload;
import relay.transport.WireMessage;

/**
 * One pipeline stage — the embedding, one transformer block, or the head — pinned to a device: it runs
 * on that device's single-threaded dispatcher, so a device's work is serialized and two devices run in
 * parallel. It follows its device's plan of forwards and backwards, waiting for the message each action
 * needs. Handling a backward message computes the input gradient, sends it upstream, and hands each weight
 * gradient to the stage's {@link StageOptimizer} (which applies it at once in eager mode).
 */
public final class StageActor extends AbstractBehavior<StageActor.Command> {

    /** The stage's protocol. */
    public sealed interface Command permits Connect, Tokens, Targets, Forward, Backward, SetTrainable, TiedGradient,
            TiedWeights, CollectTrace, CollectState, RestoreState, LeftDevice {}

    /**
     * The stage's neighbours, sent once after every stage exists (local wiring, not a wire message):
     * previous and next in the pipeline, the embedding and head, and the first and last stage on this
     * stage's device (the last to run a forward, which may be the head, and the last to run a backward).
     */
    public record Connect(ActorRef<Command> previous, ActorRef<Command> next, ActorRef<Command> embedding,
                          ActorRef<Command> head, ActorRef<Command> deviceFirst, ActorRef<Command> deviceLastForward,
                          ActorRef<Command> deviceLastBackward) implements Command, NoSerializationVerificationNeeded {}

    /**
     * A microbatch's forward (or backward) has passed through every stage of this device. A device runs its
     * plan one action at a time across its stages: the first stage starts the next forward only when the
     * previous one has left the device (and the last stage the next backward likewise), so a microbatch goes
     * through the whole device before the next one competes for its thread. Never leaves the device.
     */
    public record LeftDevice(Position pos, boolean forward) implements Command, NoSerializationVerificationNeeded {}

    /** A microbatch's token ids, to the embedding. */
    public record Tokens(Position pos, int[] ids) implements Command, WireMessage {}

    /** A microbatch's next-token targets, to the head. */
    public record Targets(Position pos, int[] ids) implements Command, WireMessage {}

    /** Activations flowing forward. */
    public record Forward(Position pos, TensorPayload activation) implements Command, WireMessage {}

    /** Activation gradients flowing backward. */
    public record Backward(Position pos, TensorPayload gradient) implements Command, WireMessage {}

    /** LISA: a block trains from this step on, or is frozen (its optimizer state is freed). */
    public record SetTrainable(long step, boolean trainable) implements Command, WireMessage {}

    /** The head's summed gradient of the tied matrix, to the embedding at the end of a pass. */
    public record TiedGradient(long step, TensorPayload gradient) implements Command, WireMessage {}

    /** The tied matrix after its update, from the embedding back to the head's replica. */
    public record TiedWeights(long step, TensorPayload weights) implements Command, WireMessage {}

    /** Hands over the trace recorded so far (local only). */
    public record CollectTrace(ActorRef<TraceDump> replyTo) implements Command, NoSerializationVerificationNeeded {}

    /** Hands over the stage's optimizer state as named values (local only; read between steps). */
    public record CollectState(ActorRef<StateDump> replyTo) implements Command, NoSerializationVerificationNeeded {}

    /**
     * Sets the stage's optimizer state from a checkpoint's "parameter/role" → values, taking what belongs to
     * its parameters; replies with the names of the state it then holds, or why it could not (local only;
     * between steps).
     */
    public record RestoreState(java.util.Map<String, float[]> values, ActorRef<Restored> replyTo)
            implements Command, NoSerializationVerificationNeeded {}

    /** The state a stage holds after {@link RestoreState}, or (error not null) why the values did not fit. */
    public record Restored(java.util.Set<String> held, String error) implements NoSerializationVerificationNeeded {}

    /** A stage's optimizer state, "parameter/role" → values. */
    public record StateDump(java.util.Map<String, float[]> values) implements NoSerializationVerificationNeeded {}

    /** A stage's trace events. */
    public record TraceDump(List<TraceEvent> events) implements NoSerializationVerificationNeeded {}

    /** The math of this stage: exactly one of the three is set. */
    public record Work(Embedding embedding, TransformerBlock block, LmHead head) {
        List<Parameter> parameters() {
            if (embedding != null) return embedding.parameters();
            if (block != null) return block.parameters();
            return head.parameters(true);
        }
    }

    /** @param tied whether the embedding and the head share the token table (each stage keeps a replica) */
    static Behavior<Command> create(int stage, String name, Device device, Work work, boolean tied, Layout layout,
                                    StageOptimizer optimizer, ActorRef<Coordinator.Command> coordinator, TraceRecorder trace) {
        return Behaviors.setup(ctx -> new StageActor(ctx, stage, name, device, work, tied, layout, optimizer, coordinator, trace));
    }

    /** The schedule, and which of how many devices this stage's device is. */
    record Layout(PipelineSchedule schedule, int device, int devices) {}

    private final int stage;
    private final String name;
    private final Device device;
    private final Work work;
    private final Layout layout;
    private final StageOptimizer optimizer;
    private final ActorRef<Coordinator.Command> coordinator;
    private final TraceRecorder trace;
    private final boolean tied;

    private ActorRef<Command> previous;
    private ActorRef<Command> next;
    private ActorRef<Command> embeddingStage;
    private ActorRef<Command> headStage;
    private ActorRef<Command> deviceFirst;
    private ActorRef<Command> deviceLastForward;
    private ActorRef<Command> deviceLastBackward;
    private final java.util.Set<Integer> forwardsLeft = new java.util.HashSet<>();
    private final java.util.Set<Integer> backwardsLeft = new java.util.HashSet<>();

    private Position pass;
    private List<PipelineSchedule.Action> plan = List.of();
    private int nextAction;
    private boolean planDone;
    private boolean awaitingTied;
    private final Map<Integer, Tokens> tokens = new HashMap<>();
    private final Map<Integer, Targets> targets = new HashMap<>();
    private final Map<Integer, Forward> forwards = new HashMap<>();
    private final Map<Integer, Backward> backwards = new HashMap<>();
    private final Map<Integer, Saved> saved = new HashMap<>();
    private TiedGradient headTied;
    private double normPartial;
    private long busyNanos;
    /** Backward messages whose gradients this block applied at once (eager mode); staleness counts these. */
    private long updatesApplied;
    private long staleness;
    private long blockedSince = -1;
    private boolean failed;

    /** What a block keeps from a microbatch's forward to its backward (and how many updates it had seen). */
    private record Saved(Tensor input, TransformerBlock.Forward forward, long updatesAtForward) {}

    private StageActor(ActorContext<Command> ctx, int stage, String name, Device device, Work work, boolean tied,
                       Layout layout, StageOptimizer optimizer,
                       ActorRef<Coordinator.Command> coordinator, TraceRecorder trace) {
        super(ctx);
        this.stage = stage;
        this.name = name;
        this.device = device;
        this.work = work;
        this.layout = layout;
        this.optimizer = optimizer;
        this.coordinator = coordinator;
        this.trace = trace;
        this.tied = tied && work.block() == null;
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Connect.class, this::onConnect)
                .onMessage(Tokens.class, m -> arrive(m.pos(), () -> tokens.put(m.pos().microbatch(), m)))
                .onMessage(Targets.class, m -> arrive(m.pos(), () -> targets.put(m.pos().microbatch(), m)))
                .onMessage(Forward.class, m -> arrive(m.pos(), () -> forwards.put(m.pos().microbatch(), m)))
                .onMessage(Backward.class, m -> arrive(m.pos(), () -> backwards.put(m.pos().microbatch(), m)))
                .onMessage(LeftDevice.class, m -> arrive(m.pos(),
                        () -> (m.forward() ? forwardsLeft : backwardsLeft).add(m.pos().microbatch())))
                .onMessage(SetTrainable.class, this::onSetTrainable)
                .onMessage(TiedGradient.class, this::onTiedGradient)
                .onMessage(TiedWeights.class, this::onTiedWeights)
                .onMessage(CollectState.class, m -> {
                    m.replyTo().tell(new StateDump(optimizer.export()));
                    return this;
                })
                .onMessage(RestoreState.class, this::onRestoreState)
                .onMessage(CollectTrace.class, m -> {
                    m.replyTo().tell(new TraceDump(trace.drain()));
                    return this;
                })
                .onSignal(PostStop.class, s -> {
                    discardPending();
                    optimizer.close();
                    return this;
                })
                .build();
    }

    private Behavior<Command> onConnect(Connect c) {
        previous = c.previous();
        next = c.next();
        embeddingStage = c.embedding();
        headStage = c.head();
        deviceFirst = c.deviceFirst();
        deviceLastForward = c.deviceLastForward();
        deviceLastBackward = c.deviceLastBackward();
        return this;
    }

    /** Records an arriving message of a pass (starting the pass if it is new), then runs what is ready. */
    private Behavior<Command> arrive(Position pos, Runnable store) {
        if (failed) return this;
        if (!pos.samePass(pass)) startPass(pos);
        store.run();
        return guarded(pos, this::drain);
    }

    private void startPass(Position pos) {
        pass = pos;
        List<PipelineSchedule.Action> devicePlan = layout.schedule().plan(layout.device(), layout.devices(), pos.microbatches());
        // The head's backward is fused into its forward: it takes its device's forwards only.
        plan = work.head() == null ? devicePlan : devicePlan.stream().filter(PipelineSchedule.Action::forward).toList();
        nextAction = 0;
        forwardsLeft.clear();
        backwardsLeft.clear();
        planDone = false;
        awaitingTied = false;
        busyNanos = 0;
        staleness = 0;
        blockedSince = System.nanoTime();
    }

    /** Runs body; any failure is reported to the coordinator with stage, step and microbatch, and the stage stops working. */
    private Behavior<Command> guarded(Position pos, Runnable body) {
        try {
            body.run();
        } catch (RuntimeException | Error e) {
            failed = true;
            String where = name + " (stage " + stage + "), " + pos;
            // A non-finite loss is how training diverges, not a fault of the code: no stack trace for it.
            boolean diverged = e instanceof ArithmeticException;
            if (diverged) {
                getContext().getLog().warn("{}: {}", where, e.getMessage());
            } else {
                getContext().getLog().error("{} failed", where, e);
            }
            coordinator.tell(Coordinator.Report.failed(stage, pos, where + ": " + (diverged ? e.getMessage() : e)));
            discardPending();
        }
        return this;
    }

    private void drain() {
        while (nextAction < plan.size()) {
            PipelineSchedule.Action a = plan.get(nextAction);
            if (!ready(a)) return;
            long start = System.nanoTime();
            if (blockedSince >= 0) trace.span("wait", blockedSince, start, pass.withMicrobatch(a.microbatch()));
            Position pos = pass.withMicrobatch(a.microbatch());
            if (a.forward()) {
                forward(pos);
                if (getContext().getSelf().equals(deviceLastForward)) signal(deviceFirst, new LeftDevice(pos, true));
            } else {
                backward(pos);
                if (getContext().getSelf().equals(deviceFirst) && deviceLastBackward != null) {
                    signal(deviceLastBackward, new LeftDevice(pos, false));
                }
            }
            long end = System.nanoTime();
            busyNanos += end - start;
            trace.span(a.forward() ? "forward" : "backward", start, end, pass.withMicrobatch(a.microbatch()));
            blockedSince = end;
            nextAction++;
        }
        if (!planDone) {
            planDone = true;
            finishPass();
        }
    }

    private boolean ready(PipelineSchedule.Action a) {
        int j = a.microbatch();
        PipelineSchedule.Action before = nextAction > 0 ? plan.get(nextAction - 1) : null;
        boolean sameKindBefore = before != null && before.forward() == a.forward() && work.head() == null;
        if (sameKindBefore && a.forward() && getContext().getSelf().equals(deviceFirst)
                && !forwardsLeft.contains(before.microbatch())) return false;
        if (sameKindBefore && !a.forward() && getContext().getSelf().equals(deviceLastBackward)
                && !backwardsLeft.contains(before.microbatch())) return false;
        if (!a.forward()) return backwards.containsKey(j);
        if (work.embedding() != null) return tokens.containsKey(j);
        if (work.head() != null) return forwards.containsKey(j) && targets.containsKey(j);
        return forwards.containsKey(j);
    }

    private GradientSink sink(Position pos) {
        if (work.block() != null && !work.block().trainable()) return null;
        GradientSink inner = optimizer.sink(pos);
        return new GradientSink() {
            @Override
            public void accept(Parameter p, Tensor g) {
                long t0 = System.nanoTime();
                inner.accept(p, g);
                trace.span("update", t0, System.nanoTime(), pos);
            }

            @Override
            public Tensor sumFor(Parameter p) {
                return inner.sumFor(p);
            }
        };
    }

    /** Tells the device's first (or last) stage; to itself it is recorded at once. */
    private void signal(ActorRef<Command> to, LeftDevice m) {
        if (to.equals(getContext().getSelf())) {
            (m.forward() ? forwardsLeft : backwardsLeft).add(m.pos().microbatch());
        } else {
            to.tell(m);
        }
    }

    private void send(ActorRef<Command> to, Command m, Position pos) {
        long t0 = System.nanoTime();
        to.tell(m);
        trace.span("send", t0, System.nanoTime(), pos);
    }

    private void forward(Position pos) {
        int j = pos.microbatch();
        if (work.embedding() != null) {
            Tokens t = tokens.get(j);
            Tensor x = work.embedding().forward(t.ids(), pos.seq());
            send(next, new Forward(pos, TensorPayload.of(x)), pos);
        } else if (work.block() != null) {
            Tensor x = forwards.remove(j).activation().materialize(device, Category.ACTIVATIONS);
            TransformerBlock.Forward f = work.block().forward(x, pos.batch(), pos.seq());
            saved.put(j, new Saved(x, f, updatesApplied));
            send(next, new Forward(pos, TensorPayload.of(f.output())), pos);
        } else {
            int[] y = targets.remove(j).ids();
            LmHead.Result r;
            try (Tensor x = forwards.remove(j).activation().materialize(device, Category.ACTIVATIONS)) {
                r = work.head().lossAndBackward(x, y, 1f / pos.microbatches(), sink(pos));
            }
            if (!Double.isFinite(r.loss())) {
                r.dx().close();
                throw new ArithmeticException("loss is " + r.loss());
            }
            send(previous, new Backward(pos, TensorPayload.of(r.dx())), pos);
            if (!pos.normPass()) coordinator.tell(Coordinator.Report.loss(stage, pos, r.loss()));
        }
    }

    private void backward(Position pos) {
        int j = pos.microbatch();
        try (Tensor dOut = backwards.remove(j).gradient().materialize(device, Category.ACTIVATIONS)) {
            if (work.embedding() != null) {
                Tokens t = tokens.remove(j);
                work.embedding().backward(t.ids(), pos.seq(), dOut, sink(pos));
                return;
            }
            Saved s = saved.remove(j);
            staleness = Math.max(staleness, updatesApplied - s.updatesAtForward());
            Tensor dx;
            try (Tensor input = s.input()) {
                dx = work.block().backward(s.forward(), dOut, sink(pos));
            }
            if (work.block().trainable() && optimizer.updatesEachBackward(pos)) updatesApplied++;
            send(previous, new Backward(pos, TensorPayload.of(dx)), pos);
        }
    }

    /** The stage's last action of the pass is done: finish its gradients and, unless tied work remains, report. */
    private void finishPass() {
        long t0 = System.nanoTime();
        double sq = optimizer.finishPass(pass);
        busyNanos += System.nanoTime() - t0;
        normPartial = sq;
        if (tied && work.head() != null) {
            send(embeddingStage, new TiedGradient(pass.step(), TensorPayload.of(optimizer.takeTiedSum())), pass);
            if (pass.normPass()) {
                reportDone();
            } else {
                awaitingTied = true;
            }
        } else if (tied && work.embedding() != null) {
            awaitingTied = true;
            if (headTied != null) combineTied();
        } else {
            reportDone();
        }
    }

    private Behavior<Command> onTiedGradient(TiedGradient m) {
        if (failed) {
            m.gradient().discard();
            return this;
        }
        headTied = m;
        return guarded(pass, () -> {
            if (awaitingTied) combineTied();
        });
    }

    /** Embedding: the head's part and this stage's part of the tied gradient are both here. */
    private void combineTied() {
        long t0 = System.nanoTime();
        try (Tensor headPart = headTied.gradient().materialize(device, Category.COMMUNICATION)) {
            headTied = null;
            normPartial += optimizer.finishTied(headPart, pass);
        }
        awaitingTied = false;
        if (!pass.normPass()) {
            Tensor table = work.embedding().tokenTable().value();
            Tensor copy = device.empty(Category.COMMUNICATION, table.shape());
            device.copy(table, copy);
            send(headStage, new TiedWeights(pass.step(), TensorPayload.of(copy)), pass);
        }
        busyNanos += System.nanoTime() - t0;
        reportDone();
    }

    /** Head: the updated tied matrix replaces its replica. */
    private Behavior<Command> onTiedWeights(TiedWeights m) {
        if (failed) {
            m.weights().discard();
            return this;
        }
        return guarded(pass, () -> {
            m.weights().copyInto(work.head().weight().value());
            awaitingTied = false;
            reportDone();
        });
    }

    private void reportDone() {
        coordinator.tell(Coordinator.Report.passDone(stage, pass, normPartial, staleness, busyNanos));
        normPartial = 0;
    }

    private Behavior<Command> onRestoreState(RestoreState m) {
        try {
            optimizer.restore(updatedParameters(), m.values());
            m.replyTo().tell(new Restored(java.util.Set.copyOf(optimizer.export().keySet()), null));
        } catch (IllegalArgumentException e) {
            m.replyTo().tell(new Restored(java.util.Set.of(), name + ": " + e.getMessage()));
        }
        return this;
    }

    /** What this stage's optimizer updates: its parameters, less the head's replica of a tied table (the embedding updates it). */
    private List<Parameter> updatedParameters() {
        if (!tied || work.head() == null) return work.parameters();
        return work.parameters().stream().filter(p -> p != work.head().weight()).toList();
    }

    private Behavior<Command> onSetTrainable(SetTrainable m) {
        TransformerBlock b = work.block();
        if (b.trainable() && !m.trainable()) optimizer.release(b.parameters());
        b.setTrainable(m.trainable());
        coordinator.tell(Coordinator.Report.trainableSet(stage, m.step()));
        return this;
    }

    /** After a failure or at shutdown: free every tensor still held in messages or saved activations. */
    private void discardPending() {
        forwards.values().forEach(f -> f.activation().discard());
        backwards.values().forEach(b -> b.gradient().discard());
        if (headTied != null) headTied.gradient().discard();
        for (Saved s : saved.values()) {
            s.forward().saved().close();
            s.input().close();
        }
        forwards.clear();
        backwards.clear();
        saved.clear();
        headTied = null;
    }
}
