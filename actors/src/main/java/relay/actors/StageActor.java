package relay.actors;

import java.util.concurrent.Executor;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.BehaviorBuilder;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import relay.stages.memory.Category;
import relay.stages.tensor.Device;
import relay.transport.TensorChannel;

/**
 * One pipeline stage pinned to a device: it runs on that device's single-threaded dispatcher, so a device's
 * work is serialized and two devices run in parallel. It builds its role (embedding, block or head) from its
 * spec in its own setup and owns it: its tensors leave it only as messages. Its states are behaviours:
 * unconnected until it knows every other stage; then working through each pass ({@link PassRunner}); failed
 * after a fault, when it does no more work. In every state it answers for its weights and state
 * ({@link StageState}) and takes its role's own commands. It reports to its coordinator through
 * {@link StageEvent}s.
 */
public final class StageActor {

    /**
     * A stage built from its spec on its device, reporting to {@code events}: Ready once built, or Failed if it
     * cannot be. Its tensors for stages of other nodes go through {@code channel}, its node's tensor channel
     * (null in one JVM).
     */
    public static Behavior<StageCommand> create(StageSpec spec, Device device, ActorRef<StageEvent> events, TensorChannel channel) {
        return Behaviors.setup(ctx -> {
            TraceRecorder trace = new TraceRecorder(spec.config().traceSteps(), spec.name(), spec.device(), spec.id(),
                    spec.traceEpochMicros());
            StageRole role;
            try {
                role = StageRole.build(spec, device, trace);
            } catch (RuntimeException e) {
                StageEvent.Failure kind = e instanceof IllegalArgumentException ? StageEvent.Failure.INPUT : StageEvent.Failure.FAULT;
                if (kind == StageEvent.Failure.FAULT) ctx.getLog().error("{} could not be built", spec, e);
                events.tell(new StageEvent.Failed(spec.id(), null, kind, spec + " could not be built: " + e.getMessage()));
                return Behaviors.stopped();
            }
            events.tell(new StageEvent.Ready(spec.id(), ctx.getSelf(), role.stateOwners(),
                    channel == null ? "" : channel.address(), device.threads()));
            return new StageActor(ctx, spec, device, role, events, trace, channel).unconnected();
        });
    }

    private final ActorContext<StageCommand> ctx;
    private final StageSpec spec;
    /** Where messages' tensors land as they arrive. */
    private final Device device;
    private final StageRole role;
    private final ActorRef<StageEvent> events;
    private final TraceRecorder trace;
    private final TensorChannel channel;
    private final StageState state;

    private StageActor(ActorContext<StageCommand> ctx, StageSpec spec, Device device, StageRole role, ActorRef<StageEvent> events,
                       TraceRecorder trace, TensorChannel channel) {
        this.ctx = ctx;
        this.spec = spec;
        this.device = device;
        this.role = role;
        this.events = events;
        this.trace = trace;
        this.channel = channel;
        this.state = new StageState(spec, device, role, events, channel);
    }

    /** Built, not yet knowing the other stages: a pass's messages cannot go anywhere yet. */
    private Behavior<StageCommand> unconnected() {
        return anyState(passMessages(m -> refuse(m, null, " before it is connected"), (m, pos) -> refuse(m, pos, " before it is connected"),
                (m, pos) -> refuse(m, pos, " before it is connected")))
                .onMessage(StageCommand.Connect.class, c -> {
                    events.tell(new StageEvent.Connected(spec.id()));
                    return working(new PassRunner(spec, role, trace, events, new Sender(spec, c, channel, trace, events), ctx));
                })
                .onSignal(PostStop.class, s -> {
                    role.close();
                    return Behaviors.same();
                })
                .build();
    }

    /** Connected: each pass's messages go to the runner, and a failure there ends the stage's work. */
    private Behavior<StageCommand> working(PassRunner passes) {
        return anyState(passMessages(m -> role.takes(m) ? go(passes.tied(m), passes) : refuse(m, passes.pass(), ""),
                (m, pos) -> role.takes(m) ? go(passes.data(m, pos), passes) : refuse(m, pos, ""),
                (m, pos) -> spec.placement().replicas() > 1 ? go(passes.fromReplica(m, pos), passes) : refuse(m, pos, " (it has no replicas)"))
                .onMessage(StageCommand.LeftDevice.class, m -> go(passes.leftDevice(m), passes)))
                .onSignal(PostStop.class, s -> stopped(passes))
                .build();
    }

    private Behavior<StageCommand> go(boolean ok, PassRunner passes) {
        return ok ? Behaviors.same() : failed(passes);
    }

    /** After a fault the stage does no more work: a pass's messages are freed as they come. */
    private Behavior<StageCommand> failed(PassRunner passes) {
        return anyState(passMessages(m -> role.takes(m) ? dropped(m) : refuse(m, passes.pass(), ""),
                (m, pos) -> role.takes(m) ? dropped(m) : refuse(m, pos, ""), (m, pos) -> dropped(m))
                .onMessage(StageCommand.LeftDevice.class, m -> Behaviors.same()))
                .onSignal(PostStop.class, s -> stopped(passes))
                .build();
    }

    private Behavior<StageCommand> stopped(PassRunner passes) {
        passes.discard();
        role.close();
        return Behaviors.same();
    }

    private interface PassMessage {
        Behavior<StageCommand> take(StageCommand m, Position pos);
    }

    private interface TiedMessage {
        Behavior<StageCommand> take(StageCommand m);
    }

    /**
     * A pass's messages, their tensors landed on the device as they arrive: data of a microbatch, the parts of a
     * tied matrix, and the parts its replicas exchange. They come first: they are most of what a stage takes.
     */
    private BehaviorBuilder<StageCommand> passMessages(TiedMessage tied, PassMessage data, PassMessage replicas) {
        return Behaviors.receive(StageCommand.class)
                .onMessage(StageCommand.Tokens.class, m -> data.take(m, m.pos()))
                .onMessage(StageCommand.Targets.class, m -> data.take(m, m.pos()))
                .onMessage(StageCommand.Forward.class, m -> {
                    m.activation().land(device, Category.ACTIVATIONS);
                    return data.take(m, m.pos());
                })
                .onMessage(StageCommand.Backward.class, m -> {
                    m.gradient().land(device, Category.ACTIVATIONS);
                    return data.take(m, m.pos());
                })
                .onMessage(StageCommand.TiedGradient.class, m -> {
                    m.gradient().land(device, Category.COMMUNICATION);
                    return tied.take(m);
                })
                .onMessage(StageCommand.TiedWeights.class, m -> {
                    m.weights().land(device, Category.COMMUNICATION);
                    return tied.take(m);
                })
                .onMessage(StageCommand.ReplicaGradient.class, m -> {
                    m.gradient().land(device, Category.COMMUNICATION);
                    return replicas.take(m, m.pass());
                })
                .onMessage(StageCommand.ReplicaReady.class, m -> replicas.take(m, m.pass()))
                .onMessage(StageCommand.ReplicaWeights.class, m -> {
                    m.weights().land(device, Category.COMMUNICATION);
                    return replicas.take(m, m.pass());
                });
    }

    /** What the stage takes in every state: its role's own commands, and requests for its weights, state and trace. */
    private BehaviorBuilder<StageCommand> anyState(BehaviorBuilder<StageCommand> b) {
        return b.onMessage(StageCommand.SetTrainable.class, m -> roleCommand(m, () -> role.setTrainable(m.trainable()),
                        new StageEvent.TrainableSet(spec.id(), m.step(), m.trainable())))
                .onMessage(StageCommand.Redraw.class, m -> roleCommand(m, () -> role.redraw(m.draw(), m.fresh()),
                        new StageEvent.Redrawn(spec.id(), m.step())))
                .onMessage(StageCommand.CollectWeights.class, m -> handled(state::reportWeights))
                .onMessage(StageCommand.CollectState.class, m -> handled(state::reportOptimizerState))
                .onMessage(StageCommand.RestoreState.class, m -> handled(() -> state.restore(m)))
                .onMessage(StageCommand.CollectTrace.class, m -> handled(() -> events.tell(new StageEvent.Trace(spec.id(), trace.drain()))))
                .onMessage(StageCommand.WriteShard.class, m -> handled(() -> state.writeShard(m, checkpointWriter())))
                .onMessage(StageCommand.TakeSnapshot.class, m -> handled(() -> state.snapshot(m, checkpointWriter())))
                .onMessage(StageCommand.RestoreSnapshot.class, m -> handled(() -> state.restoreSnapshot(m)));
    }

    private Executor checkpointWriter() {
        return ctx.getSystem().dispatchers().lookup(DispatcherSelector.fromConfig(StageHost.CHECKPOINT_WRITER));
    }

    private static Behavior<StageCommand> handled(Runnable work) {
        work.run();
        return Behaviors.same();
    }

    /** A command of the role's own (a block's LISA and RSO commands): applied and acknowledged, or refused by a role that does not take it. */
    private Behavior<StageCommand> roleCommand(StageCommand m, Runnable apply, StageEvent done) {
        if (!role.takes(m)) return refuse(m, null, "");
        apply.run();
        events.tell(done);
        return Behaviors.same();
    }

    /** A message the stage cannot take is the sender's error: reported, its tensors freed, the stage unharmed. */
    private Behavior<StageCommand> refuse(StageCommand m, Position pos, String when) {
        dropped(m);
        events.tell(new StageEvent.Failed(spec.id(), pos, StageEvent.Failure.PROTOCOL,
                spec + " cannot take " + m.getClass().getSimpleName() + (pos == null ? "" : " (" + pos + ")") + when));
        return Behaviors.same();
    }

    /** Frees a message's tensors. */
    private static Behavior<StageCommand> dropped(StageCommand m) {
        StageCommand.discardPayload(m);
        return Behaviors.same();
    }
}
