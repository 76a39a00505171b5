package relay.actors.bench;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import java.io.InputStream;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import org.apache.pekko.Done;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.serialization.SerializationExtension;
import relay.actors.Pass;
import relay.actors.Position;
import relay.actors.StageCommand;
import relay.actors.StageHost;
import relay.stages.memory.Category;
import relay.stages.tensor.cpu.CpuDevice;
import relay.transport.RelaySerializer;
import relay.transport.TensorChannel;
import relay.transport.TensorPayload;

/**
 * Ways to move a pipeline's tensor messages between two JVMs on loopback, measured side by side in one run:
 * Relay's tensor channel (the path the pipeline uses: a {@link StageCommand.Forward} of a tensor on a CPU
 * device, taken by the receiving stage actor onto its device and acknowledged through the channel), Pekko
 * Streams TCP carrying the same messages ({@link StreamsTcp}), Artery itself over TCP and over Aeron UDP, and
 * two baselines with no framework ({@link SocketPair}): a socket pair through heap arrays and one with direct
 * buffers on both ends. Every path keeps the same number of messages in flight and each message is
 * acknowledged by the receiver; latency is the round trip of one message alone.
 */
public final class TransportBench {
    private TransportBench() {}

    /** The paths, in the order measured and shown; the direct socket pair is always measured (the others are told against it). */
    public enum Kind {
        DIRECT("direct socket pair"), PLAIN("plain socket pair"), CHANNEL("tensor channel"), STREAMS("Pekko Streams TCP"),
        ARTERY("Artery TCP"), AERON("Artery Aeron UDP"), CHANNEL_TLS("tensor channel, TLS"), STREAMS_TLS("Pekko Streams TCP, TLS");

        public final String title;

        Kind(String title) {
            this.title = title;
        }

        /** As the command line names it: direct, plain, channel, streams, artery, aeron, channel-tls, streams-tls. */
        public String key() {
            return name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
        }
    }

    /** Aeron carries a message of at most an eighth of its term buffer, and never over 16 MiB. */
    static final long AERON_MAX = 16L << 20;

    /** How long a path may take for one timing before it counts as unable to carry the size. */
    static final int TIMEOUT_SECONDS = 60;

    /** One way between the JVMs: messages of a size, a window of them in flight, each acknowledged by the peer. */
    interface Path extends AutoCloseable {
        String name();

        /** The largest message it carries. */
        long limit();

        /** Seconds from the first send to the last acknowledgement of {@code messages} messages, {@code window} in flight. */
        double seconds(long bytes, int messages, int window) throws Exception;
    }

    /**
     * What one path measured at one size: MiB/s (2^20 bytes) over {@code messages} timed messages and a lone
     * message's round trip in ms; NaN and why where it could not.
     */
    public record Measured(String path, int messages, double mibPerSecond, double latencyMs, String failure) {}

    /** Every path at one size, in the order measured. */
    public record Result(long bytes, List<Measured> paths) {
        public Measured of(Kind path) {
            return paths.stream().filter(m -> m.path().equals(path.title)).findFirst().orElseThrow();
        }
    }

    /** A tensor message taken by the receiving stage within its JVM (the Streams path hands it over so). */
    record Take(StageCommand.Forward message, ActorRef<Done> replyTo) {}

    /** Where the stage-like actors run: a device's dispatcher. */
    private static final Props STAGE = DispatcherSelector.fromConfig(StageHost.dispatcher(0));

    /** The line a peer prints when it is ready, followed by name=address pairs. */
    public static final String READY = "relay-transport-peer";

    /**
     * Artery over {@code transport} on loopback, its large-message stream for the sinks, no cluster, and a
     * device's one-thread dispatcher, on which the senders and sinks run as a pipeline's stages do.
     */
    static Config remote(String transport, long maxMessage) {
        return StageHost.dispatchers(List.of(0))
                .withValue("pekko.actor.provider", ConfigValueFactory.fromAnyRef("remote"))
                .withValue("pekko.remote.artery.transport", ConfigValueFactory.fromAnyRef(transport))
                .withValue("pekko.remote.artery.canonical.hostname", ConfigValueFactory.fromAnyRef("127.0.0.1"))
                .withValue("pekko.remote.artery.canonical.port", ConfigValueFactory.fromAnyRef(0))
                .withValue("pekko.remote.artery.large-message-destinations", ConfigValueFactory.fromIterable(List.of("/system/sink-*")))
                .withValue("pekko.remote.artery.advanced.maximum-large-frame-size", ConfigValueFactory.fromAnyRef(maxMessage))
                // Aeron's threads spin while idle at the default level: on a machine of few cores they would take the other paths' cores.
                .withValue("pekko.remote.artery.advanced.aeron.idle-cpu-level", ConfigValueFactory.fromAnyRef(1))
                .withValue("pekko.remote.warn-about-direct-use", ConfigValueFactory.fromAnyRef(false))
                .withValue("pekko.loglevel", ConfigValueFactory.fromAnyRef("ERROR"))
                .withFallback(ConfigFactory.load());
    }

    /** The actor systems of a JVM: Artery over TCP (which the tensor channels sit beside), and over Aeron where it is measured. */
    private record Systems(ActorSystem<Void> tcp, ActorSystem<Void> aeron) implements AutoCloseable {
        static Systems start(long maxMessage, boolean aeron) {
            ActorSystem<Void> tcp = ActorSystem.create(Behaviors.empty(), "bench", remote("tcp", maxMessage));
            if (!aeron) return new Systems(tcp, null);
            // Aeron's term buffer sets its largest message (an eighth of it); read once, when its driver starts.
            System.setProperty("aeron.term.buffer.length", String.valueOf(8 * AERON_MAX));
            // Its logs as sparse files, untouched until used: by default the driver writes every page of them first, for seconds.
            System.setProperty("aeron.term.buffer.sparse.file", "true");
            System.setProperty("aeron.pre.touch.mapped.memory", "false");
            return new Systems(tcp, ActorSystem.create(Behaviors.empty(), "bench-aeron", remote("aeron-udp", Math.min(maxMessage, AERON_MAX))));
        }

        @Override
        public void close() {
            for (ActorSystem<Void> s : java.util.Arrays.asList(tcp, aeron)) {
                if (s == null) continue;
                s.terminate();
                s.getWhenTerminated().toCompletableFuture().join();
            }
        }
    }

    static RelaySerializer serializer(ActorSystem<?> system) {
        try {
            return (RelaySerializer) SerializationExtension.get(Adapter.toClassic(system)).serializerFor(StageCommand.Forward.class);
        } catch (java.io.NotSerializableException e) {
            throw new IllegalStateException("Relay's serializer is not bound to its messages: " + e.getMessage(), e);
        }
    }

    /** A message of {@code bytes} of float32 values on the device, the {@code i}-th in flight. */
    static StageCommand.Forward forward(CpuDevice device, long bytes, int i) {
        int floats = Math.toIntExact(bytes / Float.BYTES);
        Position pos = new Position(0, Pass.TRAIN, 1, i % 1024, 1024, 1, 1, 1f);
        return new StageCommand.Forward(pos, TensorPayload.of(device.empty(Category.ACTIVATIONS, floats / 256, 256)));
    }

    /**
     * The receiving side of the {@code kinds} of path, in a JVM of its own: a stage-like actor per path that takes
     * each tensor onto a device and acknowledges it, and the baselines' sockets. Prints its addresses, then
     * serves until {@code stop} ends (the sender closes it). {@code tls} is for the TLS paths.
     */
    public static void serve(Set<Kind> kinds, long maxMessage, SSLContext tls, PrintStream out, InputStream stop) throws Exception {
        try (CpuDevice device = new CpuDevice("sink", 1); Systems systems = Systems.start(maxMessage, kinds.contains(Kind.AERON));
             TensorChannel channel = TensorChannel.open(systems.tcp(), "127.0.0.1", maxMessage, null);
             TensorChannel channelTls = kinds.contains(Kind.CHANNEL_TLS) ? TensorChannel.open(systems.tcp(), "127.0.0.1", maxMessage, tls) : null) {
            Map<Kind, String> at = new java.util.EnumMap<>(Kind.class);
            ActorRefResolver refs = ActorRefResolver.get(systems.tcp());
            ActorRef<Object> local = sink(systems.tcp(), "sink-streams", device, null);
            for (Kind k : kinds) {
                at.put(k, switch (k) {
                    case DIRECT -> String.valueOf(SocketPair.serve(true));
                    case PLAIN -> String.valueOf(SocketPair.serve(false));
                    case CHANNEL -> channel.address() + " " + refs.toSerializationFormat(sink(systems.tcp(), "sink-channel", device, channel));
                    case CHANNEL_TLS -> channelTls.address() + " " + refs.toSerializationFormat(sink(systems.tcp(), "sink-channel-tls", device, channelTls));
                    case STREAMS -> String.valueOf(StreamsTcp.bind(systems.tcp(), local, maxMessage + 8, null));
                    case STREAMS_TLS -> String.valueOf(StreamsTcp.bind(systems.tcp(), local, maxMessage + 8, tls));
                    case ARTERY -> refs.toSerializationFormat(sink(systems.tcp(), "sink-artery", device, null));
                    case AERON -> ActorRefResolver.get(systems.aeron()).toSerializationFormat(sink(systems.aeron(), "sink-aeron", device, null));
                });
            }
            StringBuilder line = new StringBuilder(READY);
            at.forEach((k, v) -> line.append('\t').append(k.key()).append('=').append(v));
            out.println(line);
            out.flush();
            while (stop.read() >= 0) {
                // Serve until the sender closes the stream.
            }
        }
    }

    /** The peer's addresses from its ready line. */
    public static Map<Kind, String> addresses(String ready) {
        String[] parts = ready.split("\t");
        if (!parts[0].equals(READY)) throw new IllegalStateException("the peer JVM did not start: " + ready);
        Map<Kind, String> at = new java.util.EnumMap<>(Kind.class);
        for (int i = 1; i < parts.length; i++) {
            int eq = parts[i].indexOf('=');
            at.put(Kind.valueOf(parts[i].substring(0, eq).toUpperCase(java.util.Locale.ROOT).replace('-', '_')), parts[i].substring(eq + 1));
        }
        return at;
    }

    /**
     * A receiving stage: takes each tensor onto the device and acknowledges it — through the tensor channel to
     * the stage the Connect named where it has one, else through Artery, or to the asker within its JVM.
     */
    private static ActorRef<Object> sink(ActorSystem<?> system, String name, CpuDevice device, TensorChannel channel) {
        Behavior<Object> b = Behaviors.setup(ctx -> {
            StageCommand.Connect[] sender = new StageCommand.Connect[1];
            return Behaviors.receive(Object.class)
                    .onMessage(StageCommand.Connect.class, c -> {
                        sender[0] = c;
                        // The Connect came through the remoting: say it arrived, the same way.
                        c.stages().get(0).tell(new StageCommand.LeftDevice(new Position(0, Pass.TRAIN, 0, 0, 1, 1, 1, 1f), true));
                        return Behaviors.same();
                    })
                    .onMessage(StageCommand.Forward.class, f -> {
                        f.activation().materialize(device, Category.ACTIVATIONS).close();
                        StageCommand.LeftDevice ack = new StageCommand.LeftDevice(f.pos(), true);
                        if (channel != null) channel.send(sender[0].channels().get(0), sender[0].stages().get(0), ack);
                        else sender[0].stages().get(0).tell(ack);
                        return Behaviors.same();
                    })
                    .onMessage(Take.class, t -> {
                        t.message().activation().materialize(device, Category.ACTIVATIONS).close();
                        t.replyTo().tell(Done.getInstance());
                        return Behaviors.same();
                    })
                    .build();
        });
        return system.systemActorOf(b, name, STAGE);
    }

    /**
     * Measures each size against a peer that {@link #serve}s at {@code at}: on every path, {@code messages}
     * messages with {@code window} in flight for throughput ({@link #AUTO}: {@link #messagesFor} the size), then
     * lone messages for latency.
     */
    public static List<Result> measure(Map<Kind, String> at, List<Long> sizes, int messages, int window, long maxMessage,
                                       SSLContext tls, PrintStream progress) throws Exception {
        try (CpuDevice device = new CpuDevice("source", 1); Systems systems = Systems.start(maxMessage, at.containsKey(Kind.AERON));
             TensorChannel channel = TensorChannel.open(systems.tcp(), "127.0.0.1", maxMessage, null);
             TensorChannel channelTls = at.containsKey(Kind.CHANNEL_TLS) ? TensorChannel.open(systems.tcp(), "127.0.0.1", maxMessage, tls) : null) {
            ActorRefResolver refs = ActorRefResolver.get(systems.tcp());
            List<Path> paths = new ArrayList<>();
            try {
                for (Map.Entry<Kind, String> e : at.entrySet()) {
                    String title = e.getKey().title, where = e.getValue();
                    paths.add(switch (e.getKey()) {
                        case DIRECT -> SocketPair.connect(title, true, Integer.parseInt(where));
                        case PLAIN -> SocketPair.connect(title, false, Integer.parseInt(where));
                        case CHANNEL -> ActorPath.through(title, systems.tcp(), device, channel, where, maxMessage);
                        case CHANNEL_TLS -> ActorPath.through(title, systems.tcp(), device, channelTls, where, maxMessage);
                        case STREAMS -> StreamsTcp.connect(title, systems.tcp(), device, Integer.parseInt(where), maxMessage, null);
                        case STREAMS_TLS -> StreamsTcp.connect(title, systems.tcp(), device, Integer.parseInt(where), maxMessage, tls);
                        case ARTERY -> new ActorPath(title, systems.tcp(), device, null, null, refs.resolveActorRef(where), maxMessage);
                        case AERON -> new ActorPath(title, systems.aeron(), device, null, null, ActorRefResolver.get(systems.aeron()).resolveActorRef(where),
                                Math.min(maxMessage, AERON_MAX));
                    });
                }
                // Before any size, each path carries small messages untimed: the JIT compiles every path whatever size comes first.
                for (Path p : paths) {
                    try {
                        p.seconds(Math.min(JIT_WARM_UP_BYTES, p.limit() / 2), JIT_WARM_UP, window);
                    } catch (Exception e) {
                        // Its own sizes will say why it fails.
                    }
                }
                List<Result> results = new ArrayList<>();
                Map<Path, String> failed = new LinkedHashMap<>();
                for (long size : sizes) {
                    int n = messages == AUTO ? messagesFor(size) : messages;
                    results.add(measure(paths, failed, size, n, window, Math.max(11, Math.min(101, (int) (LONE_BYTES / size)))));
                    progress.printf("%d bytes measured on %d paths%n", size, paths.size());
                }
                return results;
            } finally {
                for (Path p : paths) p.close();
            }
        }
    }

    /** Timed messages chosen by size: as many as make {@link #TIMED_BYTES}, at least 32. */
    public static final int AUTO = 0;
    private static final long TIMED_BYTES = 256L << 20;
    /** Lone round trips: as many as make this many bytes, from 11 to 101. */
    private static final long LONE_BYTES = 64L << 20;

    /**
     * Enough messages that one timing moves 256 MiB: on this machine's loopback a few dozen messages of 1 MiB
     * take ten milliseconds, and a thread descheduled once moves the median by a third.
     */
    public static int messagesFor(long size) {
        return (int) Math.max(32, TIMED_BYTES / size);
    }

    private static final int REPEATS = 5;
    /** The first untimed pass of every path: this many messages of 64 KiB. */
    private static final int JIT_WARM_UP = 2000;
    private static final long JIT_WARM_UP_BYTES = 64 << 10;
    /** The untimed pass: this many messages, or as many as make this many bytes where fewer. */
    private static final int WARM_UP = 2000;
    private static final long WARM_UP_BYTES = 1L << 30;
    /** Seconds a timing may take at the rate of the untimed pass, and the fewest messages a timing has. */
    private static final double TIMING_BUDGET = 10;
    private static final int MIN_TIMED = 8;

    /**
     * One size on every path: an untimed pass of each first (the JIT compiles all before any is timed), then the
     * paths in turn, five times, each at its median, so that none is favoured by going first or by a hiccup of
     * the machine; then each path's lone round trips. A path that would take over ten seconds a timing at the
     * rate of its untimed pass is timed on fewer messages (at least eight).
     */
    private static Result measure(List<Path> paths, Map<Path, String> failed, long size, int messages, int window, int rounds) {
        Map<Path, double[]> runs = new LinkedHashMap<>();
        Map<Path, Integer> timed = new LinkedHashMap<>();
        for (Path p : paths) {
            if (failed.containsKey(p)) failed.put(p, "failed at a smaller size: " + failed.get(p).replaceFirst("^failed at a smaller size: ", ""));
            else if (size > p.limit() - 4096) failed.put(p, "carries at most " + p.limit() + " bytes");
            int warm = Math.max(messages, (int) Math.min(WARM_UP, WARM_UP_BYTES / size));
            double[] took = {0};
            if (!failed.containsKey(p)) attempt(p, failed, () -> took[0] = p.seconds(size, warm, window));
            // A slow path is timed on fewer messages, as many as its untimed pass moved in TIMING_BUDGET seconds.
            timed.put(p, (int) Math.max(MIN_TIMED, Math.min(messages, warm * TIMING_BUDGET / Math.max(took[0], 1e-9))));
            runs.put(p, new double[REPEATS]);
        }
        for (int r = 0; r < REPEATS; r++) {
            for (Path p : paths) {
                int round = r;
                if (!failed.containsKey(p)) attempt(p, failed, () -> runs.get(p)[round] = p.seconds(size, timed.get(p), window));
            }
        }
        List<Measured> out = new ArrayList<>();
        for (Path p : paths) {
            if (failed.containsKey(p)) {
                out.add(new Measured(p.name(), 0, Double.NaN, Double.NaN, failed.get(p)));
                continue;
            }
            double[] lone = new double[rounds];
            attempt(p, failed, () -> {
                for (int i = 0; i < rounds; i++) lone[i] = p.seconds(size, 1, 1);
                return 0;
            });
            int n = timed.get(p);
            out.add(new Measured(p.name(), n, size * (double) n / median(runs.get(p)) / (1 << 20), median(lone) * 1e3, failed.get(p)));
        }
        return new Result(size, out);
    }

    private interface Timed {
        double run() throws Exception;
    }

    /** Runs a timing; a path that fails is noted with why and not asked again (a path that cannot carry a size will not carry a larger one). */
    private static void attempt(Path p, Map<Path, String> failed, Timed t) {
        try {
            t.run();
        } catch (Exception e) {
            failed.put(p, e.getClass().getSimpleName() + ": " + e.getMessage());
        }
    }

    private static double median(double[] s) {
        double[] sorted = s.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }

    /**
     * A stage-like actor sending tensors to the peer's sink: through a tensor channel where it has one, else
     * told through Artery; acknowledgements come back the same way.
     */
    private record ActorPath(String name, ActorSystem<Void> system, CpuDevice device, TensorChannel channel, String peerChannel,
                             ActorRef<StageCommand> peer, long limit) implements Path {
        /** The channel's path: {@code at} is the peer channel's address and its sink's actor path. */
        static ActorPath through(String name, ActorSystem<Void> system, CpuDevice device, TensorChannel channel, String at, long limit) {
            String[] parts = at.split(" ");
            return new ActorPath(name, system, device, channel, parts[0], ActorRefResolver.get(system).resolveActorRef(parts[1]), limit);
        }

        @Override
        public double seconds(long bytes, int messages, int window) throws Exception {
            CompletableFuture<Long> done = new CompletableFuture<>();
            ActorRef<StageCommand> source = system.systemActorOf(Behaviors.setup(ctx -> {
                peer.tell(new StageCommand.Connect(List.of(ctx.getSelf()), List.of(channel == null ? "-" : channel.address())));
                int[] sent = {0}, acked = {0};
                long[] start = {0};
                Runnable send = () -> {
                    StageCommand.Forward f = forward(device, bytes, sent[0]++);
                    if (channel != null) channel.send(peerChannel, peer, f);
                    else peer.tell(f);
                };
                boolean[] connected = {false};
                return Behaviors.receive(StageCommand.class).onMessage(StageCommand.LeftDevice.class, ack -> {
                    if (!connected[0]) {
                        // One message warms the path up before the clock starts.
                        connected[0] = true;
                        send.run();
                        return Behaviors.same();
                    }
                    if (start[0] == 0) {
                        start[0] = System.nanoTime();
                        for (int i = 0; i < Math.min(window, messages); i++) send.run();
                        return Behaviors.same();
                    }
                    if (++acked[0] == messages) {
                        done.complete(System.nanoTime() - start[0]);
                        return Behaviors.stopped();
                    }
                    if (sent[0] <= messages) send.run();
                    return Behaviors.same();
                }).build();
            }), "source-" + System.nanoTime(), STAGE);
            try {
                return done.get(TIMEOUT_SECONDS, TimeUnit.SECONDS) / 1e9;
            } catch (java.util.concurrent.TimeoutException e) {
                throw new IllegalStateException("not " + messages + " acknowledgements in " + TIMEOUT_SECONDS + " s to " + source.path());
            }
        }

        @Override
        public void close() {
            // The systems and channels are closed with the run.
        }
    }
}
