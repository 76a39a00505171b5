package relay.actors;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Executor;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import relay.stages.io.CheckpointShard;
import relay.stages.io.SafeTensors;
import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.memory.MemoryLedger;
import relay.stages.tensor.Device;
import relay.transport.TensorChannel;

/**
 * One pipeline stage pinned to a device: it runs on that device's single-threaded dispatcher, so a device's
 * work is serialized and two devices run in parallel. It builds its role (embedding, block or head) from its
 * spec in its own setup and owns it: its tensors leave it only as messages. It holds each pass's messages
 * until its {@link PlanCursor} gets to them, runs the role's forwards and backwards, and reports to its
 * coordinator through {@link StageEvent}s.
 */
public final class StageActor extends AbstractBehavior<StageCommand> {

    /**
     * A stage built from its spec on its device, reporting to {@code events}: Ready once built, or Failed if it
     * cannot be. Its tensors for stages of other nodes go through {@code channel}, its node's tensor channel
     * (null in one JVM).
     */
    public static Behavior<StageCommand> create(StageSpec spec, Device device, ActorRef<StageEvent> events, TensorChannel channel) {
        return Behaviors.setup(ctx -> {
            TraceRecorder trace = new TraceRecorder(spec.config().traceSteps(), spec.name(), spec.device(), spec.stage(),
                    spec.traceEpochMicros());
            StageRole role;
            try {
                role = StageRole.build(spec, device, trace);
            } catch (RuntimeException e) {
                StageEvent.Failure kind = e instanceof IllegalArgumentException ? StageEvent.Failure.INPUT : StageEvent.Failure.FAULT;
                if (kind == StageEvent.Failure.FAULT) ctx.getLog().error("{} could not be built", spec, e);
                events.tell(new StageEvent.Failed(spec.stage(), null, kind, spec + " could not be built: " + e.getMessage()));
                return Behaviors.stopped();
            }
            events.tell(new StageEvent.Ready(spec.stage(), ctx.getSelf(), role.stateOwners(),
                    channel == null ? "" : channel.address()));
            return new StageActor(ctx, spec, device, role, events, trace, channel);
        });
    }

    private final StageSpec spec;
    /** Where messages' tensors land as they arrive. */
    private final Device device;
    private final StageRole role;
    private final ActorRef<StageEvent> events;
    private final TraceRecorder trace;
    private final Inbox inbox = new Inbox();
    private final List<TensorPart> restoring = new ArrayList<>();
    private final Outbox outbox = new Sender();
    private final TensorChannel channel;
    private List<ActorRef<StageCommand>> stages;
    private List<String> channels;

    private Position pass;
    private PlanCursor cursor;
    private boolean finishing;
    private long busyNanos;
    private long blockedSince = -1;
    private boolean failed;

    private StageActor(ActorContext<StageCommand> ctx, StageSpec spec, Device device, StageRole role, ActorRef<StageEvent> events,
                       TraceRecorder trace, TensorChannel channel) {
        super(ctx);
        this.device = device;
        this.channel = channel;
        this.spec = spec;
        this.role = role;
        this.events = events;
        this.trace = trace;
    }

    @Override
    public Receive<StageCommand> createReceive() {
        return newReceiveBuilder()
                .onMessage(StageCommand.Connect.class, this::onConnect)
                .onMessage(StageCommand.Tokens.class, m -> data(m, m.pos()))
                .onMessage(StageCommand.Targets.class, m -> data(m, m.pos()))
                .onMessage(StageCommand.Forward.class, m -> {
                    m.activation().land(device, Category.ACTIVATIONS);
                    return data(m, m.pos());
                })
                .onMessage(StageCommand.Backward.class, m -> {
                    m.gradient().land(device, Category.ACTIVATIONS);
                    return data(m, m.pos());
                })
                .onMessage(StageCommand.LeftDevice.class, this::onLeftDevice)
                .onMessage(StageCommand.SetTrainable.class, this::onSetTrainable)
                .onMessage(StageCommand.Redraw.class, this::onRedraw)
                .onMessage(StageCommand.TiedGradient.class, m -> {
                    m.gradient().land(device, Category.COMMUNICATION);
                    return onTied(m);
                })
                .onMessage(StageCommand.TiedWeights.class, m -> {
                    m.weights().land(device, Category.COMMUNICATION);
                    return onTied(m);
                })
                .onMessage(StageCommand.CollectWeights.class, m -> answerInParts(TensorPart.split(weights(role.parameters()), TensorPart.MESSAGE_FLOATS),
                        (parts, last) -> new StageEvent.Weights(spec.stage(), parts, last)))
                .onMessage(StageCommand.CollectState.class, m -> answerInParts(TensorPart.split(role.state(),
                        TensorPart.MESSAGE_FLOATS), (parts, last) -> new StageEvent.OptimizerState(spec.stage(), parts, last)))
                .onMessage(StageCommand.RestoreState.class, this::onRestoreState)
                .onMessage(StageCommand.CollectTrace.class, m -> report(new StageEvent.Trace(spec.stage(), trace.drain())))
                .onMessage(StageCommand.WriteShard.class, this::onWriteShard)
                .onSignal(PostStop.class, s -> {
                    inbox.discard();
                    role.close();
                    return this;
                })
                .build();
    }

    private Behavior<StageCommand> report(StageEvent e) {
        events.tell(e);
        return this;
    }

    /** Tensors leave in messages of bounded size, the last one marked. */
    private Behavior<StageCommand> answerInParts(List<List<TensorPart>> groups,
                                                 java.util.function.BiFunction<List<TensorPart>, Boolean, StageEvent> event) {
        for (int i = 0; i < groups.size(); i++) events.tell(event.apply(groups.get(i), i == groups.size() - 1));
        return this;
    }

    private Behavior<StageCommand> onConnect(StageCommand.Connect c) {
        stages = c.stages();
        channels = c.channels();
        return report(new StageEvent.Connected(spec.stage()));
    }

    /** A message this stage's role cannot take is the sender's error: reported, its tensors freed, the stage unharmed. */
    private Behavior<StageCommand> refuse(StageCommand m, Position pos) {
        discard(m);
        return report(new StageEvent.Failed(spec.stage(), pos, StageEvent.Failure.PROTOCOL,
                spec + " cannot take " + m.getClass().getSimpleName() + (pos == null ? "" : " (" + pos + ")")));
    }

    private static void discard(StageCommand m) {
        if (m instanceof StageCommand.Forward f) f.activation().discard();
        if (m instanceof StageCommand.Backward b) b.gradient().discard();
        if (m instanceof StageCommand.TiedGradient t) t.gradient().discard();
        if (m instanceof StageCommand.TiedWeights t) t.weights().discard();
    }

    /** Data of a pass: held in the inbox (a new pass begins with its first message), then whatever is ready runs. */
    private Behavior<StageCommand> data(StageCommand m, Position pos) {
        if (!role.takes(m)) return refuse(m, pos);
        if (failed) {
            discard(m);
            return this;
        }
        if (!pos.samePass(pass)) startPass(pos);
        inbox.put(m);
        return guarded(pos, this::drain);
    }

    private Behavior<StageCommand> onLeftDevice(StageCommand.LeftDevice m) {
        if (failed) return this;
        if (!m.pos().samePass(pass)) startPass(m.pos());
        cursor.leftDevice(m.pos().microbatch(), m.forward());
        return guarded(m.pos(), this::drain);
    }

    private void startPass(Position pos) {
        pass = pos;
        cursor = new PlanCursor(PlanCursor.Place.of(spec.placement(), spec.stage()), spec.config().schedule(), pos.pass(),
                spec.device(), spec.placement().devices(), pos.microbatches());
        finishing = false;
        busyNanos = 0;
        blockedSince = System.nanoTime();
        role.startPass(pos);
    }

    /** Runs body; a failure is reported with stage, step and microbatch, and the stage does no more work. */
    private Behavior<StageCommand> guarded(Position pos, Runnable body) {
        try {
            body.run();
        } catch (RuntimeException | Error e) {
            failed = true;
            String where = spec + ", " + pos;
            // A non-finite loss is how training diverges, not a fault of the code: no stack trace for it.
            boolean diverged = e instanceof ArithmeticException;
            if (diverged) {
                getContext().getLog().warn("{}: {}", where, e.getMessage());
            } else {
                getContext().getLog().error("{} failed", where, e);
            }
            events.tell(new StageEvent.Failed(spec.stage(), pos, diverged ? StageEvent.Failure.DIVERGED : StageEvent.Failure.FAULT,
                    where + ": " + (diverged ? e.getMessage() : e.toString())));
            inbox.discard();
            role.discardPending();
        }
        return this;
    }

    /** Runs the plan's actions while their inputs are here and the device lets them; ends the stage's share of the pass after the last. */
    private void drain() {
        for (PipelineSchedule.Action a = cursor.next(); a != null; a = cursor.next()) {
            int j = a.microbatch();
            boolean ready = switch (a.kind()) {
                case F -> role.canForward(j, inbox);
                case B -> role.canBackward(j, inbox);
                case W -> true; // its B ran before it on this stage
            };
            if (!cursor.deviceAllows() || !ready) return;
            Position pos = pass.withMicrobatch(j);
            long start = System.nanoTime();
            if (blockedSince >= 0) trace.span("wait", blockedSince, start, pos);
            switch (a.kind()) {
                case F -> role.forward(pos, inbox, outbox);
                case B -> role.backward(pos, inbox, outbox);
                case W -> role.weightGradients(pos);
            }
            for (int to : cursor.leftDeviceTo(a)) {
                if (to == spec.stage()) {
                    cursor.leftDevice(j, a.forward());
                } else {
                    deliver(to, new StageCommand.LeftDevice(pos, a.forward()));
                }
            }
            long end = System.nanoTime();
            busyNanos += end - start;
            trace.span(spanName(a.kind(), pos.pass()), start, end, pos);
            blockedSince = end;
            cursor.advance();
        }
        if (!finishing) {
            finishing = true;
            long t0 = System.nanoTime();
            boolean complete = role.finishPass(pass, outbox);
            busyNanos += System.nanoTime() - t0;
            if (complete) passDone();
        }
    }

    /** A span's name: forward, backward or weights, told apart from the updating pass's in a norm pass and an evaluation. */
    private static String spanName(PipelineSchedule.Kind kind, Pass pass) {
        String what = switch (kind) {
            case F -> "forward";
            case B -> "backward";
            case W -> "weights";
        };
        return switch (pass) {
            case TRAIN -> what;
            case NORM -> what + " (norm pass)";
            case EVAL -> what + " (evaluation)";
        };
    }

    private void passDone() {
        events.tell(new StageEvent.PassDone(spec.stage(), pass, role.normSquared(), role.staleness(), busyNanos));
    }

    private Behavior<StageCommand> onTied(StageCommand m) {
        if (!role.takes(m)) return refuse(m, pass);
        if (failed) {
            discard(m);
            return this;
        }
        return guarded(pass, () -> {
            long t0 = System.nanoTime();
            boolean complete = role.tied(m, pass, outbox);
            busyNanos += System.nanoTime() - t0;
            if (complete) passDone();
        });
    }

    private Behavior<StageCommand> onSetTrainable(StageCommand.SetTrainable m) {
        if (!(role instanceof BlockStage block)) return refuse(m, null);
        block.setTrainable(m.trainable());
        return report(new StageEvent.TrainableSet(spec.stage(), m.step(), m.trainable()));
    }

    private Behavior<StageCommand> onRedraw(StageCommand.Redraw m) {
        if (!role.takes(m)) return refuse(m, null);
        ((BlockStage) role).redraw(m.draw(), m.fresh());
        return report(new StageEvent.Redrawn(spec.stage(), m.step()));
    }

    /** Parts of a checkpoint's state gather until the last; then the stage takes what belongs to its parameters. */
    private Behavior<StageCommand> onRestoreState(StageCommand.RestoreState m) {
        restoring.addAll(m.parts());
        if (!m.last()) return this;
        try {
            role.restore(TensorPart.assembleValues(restoring));
            return report(new StageEvent.Restored(spec.stage(), Set.copyOf(role.state().keySet()), null));
        } catch (IllegalArgumentException e) {
            return report(new StageEvent.Restored(spec.stage(), Set.of(), spec.name() + ": " + e.getMessage()));
        } finally {
            restoring.clear();
        }
    }

    /**
     * A checkpoint: the stage's copy is taken here, between steps on the device's thread, and reported at once;
     * the node's checkpoint writer then writes it while the stage trains on. The copy counts as workspace until
     * it is written.
     */
    private Behavior<StageCommand> onWriteShard(StageCommand.WriteShard m) {
        // A tied table's replica in the head is the embedding's to write.
        CheckpointShard shard = new CheckpointShard(spec.name(), spec.model(), spec.config().method().key(),
                weights(role.updated()), role.state());
        long bytes = shard.bytes();
        MemoryLedger ledger = device.memory();
        ledger.allocated(Category.WORKSPACE, bytes);
        report(new StageEvent.ShardTaken(spec.stage(), m.step()));
        ActorRef<StageEvent> to = events;
        Executor writer = getContext().getSystem().dispatchers().lookup(DispatcherSelector.fromConfig(StageHost.CHECKPOINT_WRITER));
        writer.execute(() -> {
            StageEvent.ShardWritten written;
            try {
                written = new StageEvent.ShardWritten(spec.stage(), m.step(), shard.write(Path.of(m.directory())), null);
            } catch (IOException e) {
                written = new StageEvent.ShardWritten(spec.stage(), m.step(), List.of(), spec + ": " + e.getMessage());
            } catch (RuntimeException e) {
                written = new StageEvent.ShardWritten(spec.stage(), m.step(), List.of(), spec + " could not write its shard of "
                        + m.directory() + ": " + e);
            } finally {
                ledger.released(Category.WORKSPACE, bytes);
            }
            to.tell(written);
        });
        return this;
    }

    /** Copies of these parameters' values as the model computes with them. */
    private List<SafeTensors.Tensor32> weights(List<Parameter> parameters) {
        List<SafeTensors.Tensor32> out = new ArrayList<>();
        for (Parameter p : parameters) out.add(new SafeTensors.Tensor32(p.name(), p.value().shape(), role.values(p)));
        return out;
    }

    /**
     * To a stage of another node through this node's tensor channel, else (same node, or one JVM) as a tell:
     * everything one stage sends another takes one path, so it arrives in the order sent. The channel may make
     * the stage wait while the connection's queue is full: back-pressure from a slower network or stage.
     */
    private void deliver(int stage, StageCommand m) {
        String to = channels.get(stage);
        if (channel != null && !to.isEmpty() && !to.equals(channel.address())) {
            channel.send(to, stages.get(stage), m);
        } else {
            stages.get(stage).tell(m);
        }
    }

    /** Sends what the role computed, each send a span of the trace. */
    private final class Sender implements Outbox {
        private void send(int stage, StageCommand m, Position pos) {
            long t0 = System.nanoTime();
            deliver(stage, m);
            trace.span("send", t0, System.nanoTime(), pos);
        }

        @Override
        public void toNext(StageCommand m, Position pos) {
            send(spec.stage() + 1, m, pos);
        }

        @Override
        public void toPrevious(StageCommand m, Position pos) {
            send(spec.stage() - 1, m, pos);
        }

        @Override
        public void toEmbedding(StageCommand m, Position pos) {
            send(0, m, pos);
        }

        @Override
        public void toHead(StageCommand m, Position pos) {
            send(stages.size() - 1, m, pos);
        }

        @Override
        public void loss(Position pos, double loss) {
            events.tell(new StageEvent.Loss(spec.stage(), pos, loss));
        }
    }
}
