package relay.actors;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.util.EnumMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.Terminated;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import relay.stages.memory.Category;
import relay.stages.tensor.Device;
import relay.transport.TensorChannel;
import relay.transport.TensorPayload;
import relay.transport.WireMessage;

/**
 * A node's stage host: it owns the node's devices, spawns stage actors on request from their specs (each on
 * its device's one-thread dispatcher, where it builds itself), stops them when their pipeline ends, reports its
 * devices' memory, and holds snapshots of stages (its node's and the node's before it) for a rebuilt pipeline
 * ({@link SnapshotStore}); they outlive the pipeline that took them. A device is the node's, not a stage's: the stages on it share its thread, so
 * they use it one at a time. A device is made when the first stage placed on it arrives.
 */
public final class StageHost {
    private StageHost() {}

    /** The most devices a node holds (a dispatcher each is configured, used only once a stage is placed there). */
    public static final int MAX_DEVICES = 64;

    /** Where the host reports the bytes its JVM received and no device has taken yet. */
    public static final int IN_FLIGHT = -1;

    /** Where the host reports the snapshots it holds. */
    public static final int SNAPSHOTS = -2;

    /** What a stage host takes. */
    public sealed interface Command extends WireMessage {}

    /**
     * Spawn the stage a spec describes; it reports to {@code events} (Ready, or Failed if it cannot be built). The
     * receiving node hosts {@code nodeDevices} of the pipeline's devices, which share its cores.
     */
    public record Spawn(StageSpec spec, ActorRef<StageEvent> events, int nodeDevices) implements Command {}

    /** Report each device's peak bytes per category since the last report, and start a new window. */
    public record ReportMemory(ActorRef<DeviceMemory> replyTo) implements Command {}

    /** Stop every stage of this host (their pipeline is over) and, once all have stopped, report the devices' memory. */
    public record StopStages(ActorRef<DeviceMemory> replyTo) implements Command {}

    /** Answer at once: the coordinator asks whether this host's node is still there. */
    public record Ping(ActorRef<Pong> replyTo) implements Command {}

    /** A host's answer to {@link Ping}. */
    public record Pong() implements WireMessage {}

    /** This host's node index is held by another live node: the coordinator gives it no devices, and says why. */
    public record Refuse(String why) implements Command {}

    /**
     * Part of stage {@code stage}'s snapshot of step {@code step} for this node to hold: weights, or ({@code state})
     * optimizer state; {@code last} ends it, and {@code ack} hears once it is whole. See {@link SnapshotStore}.
     */
    public record HoldSnapshot(int stage, long step, long keepFrom, boolean state, List<TensorPart> parts, boolean last,
                               ActorRef<StageEvent> ack) implements Command {
        public HoldSnapshot {
            parts = List.copyOf(parts);
        }
    }

    /**
     * Send stage {@code stage}'s snapshot of step {@code step} (only the tensors {@code names}, unless empty) to the
     * rebuilt stage {@code to}, whose node's tensor channel is at {@code channel}, as one of its {@code sources}; a
     * snapshot this node does not hold is reported to {@code events} as a failed restore.
     */
    public record SendSnapshot(int stage, long step, List<String> names, ActorRef<StageCommand> to, String channel, int sources,
                               ActorRef<StageEvent> events) implements Command {
        public SendSnapshot {
            names = List.copyOf(names);
        }
    }

    /** Peak bytes per category of each of a host's devices by device index, and of its JVM's bytes in flight under {@link #IN_FLIGHT}. */
    public record DeviceMemory(Map<Integer, Map<Category, Long>> peaks) implements WireMessage {}

    /** The dispatcher of one device: one thread, so the device's stages never compute at the same time. */
    public static String dispatcher(int device) {
        return "relay-device-" + device;
    }

    /**
     * The dispatcher that writes a node's checkpoint shards and sends its snapshots: one thread, so they go out one
     * after another, off the devices' threads.
     */
    static final String CHECKPOINT_WRITER = "relay-checkpoint-writer";

    /** Configuration of the dispatchers of these devices and of the checkpoint writer, to layer into the actor system's config. */
    public static Config dispatchers(List<Integer> devices) {
        StringBuilder s = new StringBuilder(oneThread(CHECKPOINT_WRITER));
        for (int d : devices) s.append(oneThread(dispatcher(d)));
        return ConfigFactory.parseString(s.toString());
    }

    /** A dispatcher of one thread, which runs up to 100 messages of an actor before it lets another have the thread. */
    private static String oneThread(String name) {
        return name + " { type = Dispatcher, executor = \"thread-pool-executor\", thread-pool-executor { fixed-pool-size = 1 }, "
                + "throughput = 100 }\n";
    }

    /**
     * A worker's host of CPU devices, whose stages send tensors for other nodes through {@code channel}; told
     * it is refused, it hands the coordinator's reason to {@code refused}.
     */
    public static Behavior<Command> create(TensorChannel channel, Consumer<String> refused) {
        return Behaviors.setup(ctx -> new Host(ctx, channel, DeviceKind.CPU, refused).idle());
    }

    /** The host of one JVM, its devices of this kind: no other nodes, and no coordinator to refuse it. */
    public static Behavior<Command> create(DeviceKind kind) {
        return Behaviors.setup(ctx -> new Host(ctx, null, kind, why -> { }).idle());
    }

    /** The host's devices and the requests to report when its stages have stopped. */
    private static final class Host {
        private final ActorContext<Command> ctx;
        private final Map<Integer, Device> devices = new LinkedHashMap<>();
        private boolean oversubscribed;
        private final Set<ActorRef<Void>> stopping = new HashSet<>();
        private ActorRef<DeviceMemory> stopped;
        private final TensorChannel channel;
        private final DeviceKind kind;
        private final Consumer<String> refused;
        private final SnapshotStore snapshots = new SnapshotStore();

        Host(ActorContext<Command> ctx, TensorChannel channel, DeviceKind kind, Consumer<String> refused) {
            this.ctx = ctx;
            this.channel = channel;
            this.kind = kind;
            this.refused = refused;
        }

        Behavior<Command> idle() {
            return Behaviors.receive(Command.class)
                    .onMessage(Spawn.class, this::spawn)
                    .onMessage(ReportMemory.class, m -> {
                        m.replyTo().tell(memory());
                        return Behaviors.same();
                    })
                    .onMessage(StopStages.class, this::stop)
                    .onMessage(Ping.class, m -> {
                        m.replyTo().tell(new Pong());
                        return Behaviors.same();
                    })
                    .onMessage(HoldSnapshot.class, this::hold)
                    .onMessage(SendSnapshot.class, this::send)
                    .onMessage(Refuse.class, m -> {
                        refused.accept(m.why());
                        return Behaviors.same();
                    })
                    .onSignal(Terminated.class, t -> {
                        stopping.remove(t.getRef());
                        if (stopping.isEmpty() && stopped != null) {
                            stopped.tell(memory());
                            stopped = null;
                        }
                        return Behaviors.same();
                    })
                    // The stages, its children, have stopped and freed their tensors by now.
                    .onSignal(PostStop.class, s -> {
                        devices.values().forEach(Device::close);
                        return Behaviors.same();
                    })
                    .build();
        }

        private Behavior<Command> spawn(Spawn m) {
            int d = m.spec().device();
            if (d < 0 || d >= MAX_DEVICES) {
                m.events().tell(new StageEvent.Failed(m.spec().id(), null, StageEvent.Failure.FAULT,
                        m.spec() + " is placed on device " + d + "; a node holds devices 0.." + (MAX_DEVICES - 1)));
                return Behaviors.same();
            }
            int cores = Runtime.getRuntime().availableProcessors();
            Device device = devices.get(d);
            if (device == null) {
                device = kind.open(d, m.spec().config().execution().threadsOnNode(cores, m.nodeDevices()));
                devices.put(d, device);
                int threads = devices.values().stream().mapToInt(Device::threads).sum();
                // Devices whose threads outnumber the cores wait on each other's: said once.
                if (device.holdsValues() && threads > cores && !oversubscribed) {
                    oversubscribed = true;
                    ctx.getLog().warn("{} devices of this node compute with {} threads on {} cores: lower threads-per-device (auto splits "
                            + "the cores evenly)", devices.size(), threads, cores);
                }
            }
            ActorRef<StageCommand> stage = ctx.spawn(StageActor.create(m.spec(), device, m.events(), channel), m.spec().name(),
                    DispatcherSelector.fromConfig(dispatcher(d)));
            ctx.watch(stage);
            return Behaviors.same();
        }

        private Behavior<Command> hold(HoldSnapshot m) {
            if (snapshots.take(m)) m.ack().tell(new StageEvent.SnapshotHeld(m.stage(), m.step(), ctx.getSelf()));
            return Behaviors.same();
        }

        /** The snapshot goes out in message-sized parts, weights then state, from the node's background thread (the channel may make it wait). */
        private Behavior<Command> send(SendSnapshot m) {
            SnapshotStore.Snapshot s = snapshots.get(m.stage(), m.step());
            if (s == null) {
                m.events().tell(new StageEvent.Restored(m.stage(), Set.of(), "node " + Nodes.hostPort(ctx.getSystem().address())
                        + " holds no snapshot of step " + m.step() + " of stage " + m.stage() + " (it holds " + snapshots.steps(m.stage()) + ")"));
                return Behaviors.same();
            }
            List<TensorPart> weights = m.names().isEmpty() ? s.weights()
                    : s.weights().stream().filter(p -> m.names().contains(p.name())).toList();
            List<TensorPart> state = m.names().isEmpty() ? s.state() : List.of();
            background().execute(() -> {
                List<List<TensorPart>> w = TensorPart.group(weights, TensorPart.MESSAGE_FLOATS), st = TensorPart.group(state, TensorPart.MESSAGE_FLOATS);
                for (int i = 0; i < w.size(); i++) {
                    Sender.deliver(channel, m.channel(), m.to(), new StageCommand.RestoreSnapshot(m.sources(), false, w.get(i), false));
                }
                for (int i = 0; i < st.size(); i++) {
                    Sender.deliver(channel, m.channel(), m.to(), new StageCommand.RestoreSnapshot(m.sources(), true, st.get(i), i == st.size() - 1));
                }
            });
            return Behaviors.same();
        }

        private java.util.concurrent.Executor background() {
            return ctx.getSystem().dispatchers().lookup(DispatcherSelector.fromConfig(CHECKPOINT_WRITER));
        }

        private Behavior<Command> stop(StopStages m) {
            List<ActorRef<Void>> children = ctx.getChildren();
            if (children.isEmpty()) {
                m.replyTo().tell(memory());
                return Behaviors.same();
            }
            stopped = m.replyTo();
            stopping.addAll(children);
            children.forEach(ctx::stop);
            return Behaviors.same();
        }

        private DeviceMemory memory() {
            Map<Integer, Map<Category, Long>> peaks = new LinkedHashMap<>();
            devices.forEach((d, device) -> {
                peaks.put(d, new EnumMap<>(device.memory().peaks()));
                device.memory().resetPeaks();
            });
            peaks.put(IN_FLIGHT, new EnumMap<>(TensorPayload.inFlight().peaks()));
            peaks.put(SNAPSHOTS, new EnumMap<>(snapshots.ledger().peaks()));
            snapshots.ledger().resetPeaks();
            TensorPayload.inFlight().resetPeaks();
            return new DeviceMemory(peaks);
        }
    }
}
