package relay.actors.bench;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import relay.actors.Pass;
import relay.actors.Position;
import relay.actors.StageCommand;
import relay.stages.memory.Category;
import relay.stages.tensor.Tensor;
import relay.stages.tensor.cpu.CpuDevice;
import relay.transport.TensorChannel;
import relay.transport.TensorPayload;

/**
 * Relay's tensor path between two JVMs against a plain TCP socket pair between the same two JVMs, in one run.
 * The tensor path is the one the pipeline uses: a {@link StageCommand.Forward} of a tensor on a CPU device,
 * through the {@link TensorChannel} and Relay's codecs, taken onto the receiver's device; the receiver
 * acknowledges each message through the channel too. The socket pair sends the same number of bytes from a
 * byte array and reads them into one, acknowledging each message with a byte. Both keep the same number of
 * messages in flight; latency is the round trip of one message alone.
 */
public final class TransportBench {
    private TransportBench() {}

    /** What one size measured: throughput in MiB/s (1 MiB = 2^20 bytes) and round-trip latency in ms, for each path. */
    public record Result(long bytes, double relayMibPerSecond, double rawMibPerSecond, double relayLatencyMs, double rawLatencyMs) {
        public double ratio() {
            return relayMibPerSecond / rawMibPerSecond;
        }
    }

    /** The line a peer prints when it is ready: its receiving actor's path and its socket's port. */
    static final String READY = "relay-transport-peer";

    /** Artery over TCP on loopback with a large-message frame for the largest size, and no cluster. */
    static Config remote(long maxMessage) {
        return ConfigFactory.empty()
                .withValue("pekko.actor.provider", ConfigValueFactory.fromAnyRef("remote"))
                .withValue("pekko.remote.artery.transport", ConfigValueFactory.fromAnyRef("tcp"))
                .withValue("pekko.remote.artery.canonical.hostname", ConfigValueFactory.fromAnyRef("127.0.0.1"))
                .withValue("pekko.remote.artery.canonical.port", ConfigValueFactory.fromAnyRef(0))
                .withValue("pekko.remote.artery.large-message-destinations", ConfigValueFactory.fromIterable(List.of("/user", "/user/*")))
                .withValue("pekko.remote.artery.advanced.maximum-large-frame-size", ConfigValueFactory.fromAnyRef(maxMessage))
                .withValue("pekko.remote.warn-about-direct-use", ConfigValueFactory.fromAnyRef(false))
                .withFallback(ConfigFactory.load());
    }

    /**
     * The receiving side, in a JVM of its own: an actor that takes each tensor onto a device and acknowledges
     * it, and a socket that reads each message whole and acknowledges it. Prints its addresses, then serves
     * until {@code stop} ends (the sender closes it).
     */
    public static void serve(long maxMessage, PrintStream out, InputStream stop) throws IOException, InterruptedException {
        try (CpuDevice device = new CpuDevice("sink", 1); ServerSocket server = new ServerSocket()) {
            server.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
            TensorChannel[] channel = new TensorChannel[1];
            ActorSystem<StageCommand> system = ActorSystem.create(sink(device, channel), "bench", remote(maxMessage));
            channel[0] = TensorChannel.open(system, "127.0.0.1", maxMessage, null);
            Thread raw = new Thread(() -> echo(server), "raw-sink");
            raw.setDaemon(true);
            raw.start();
            out.println(READY + " " + ActorRefResolver.get(system).toSerializationFormat(system) + " " + channel[0].address() + " "
                    + server.getLocalPort());
            out.flush();
            while (stop.read() >= 0) {
                // Serve until the sender closes the stream.
            }
            channel[0].close();
            system.terminate();
            system.getWhenTerminated().toCompletableFuture().join();
        }
    }

    /** Takes each tensor onto the device and acknowledges it to the stage the Connect named, through that stage's channel. */
    private static Behavior<StageCommand> sink(CpuDevice device, TensorChannel[] channel) {
        return Behaviors.setup(ctx -> {
            StageCommand.Connect[] sender = new StageCommand.Connect[1];
            return Behaviors.receive(StageCommand.class)
                    .onMessage(StageCommand.Connect.class, c -> {
                        sender[0] = c;
                        // The Connect came through the remoting, tensors come through the channel: say it arrived.
                        c.stages().get(0).tell(new StageCommand.LeftDevice(new Position(0, Pass.TRAIN, 0, 0, 1, 1, 1, 1f), true));
                        return Behaviors.same();
                    })
                    .onMessage(StageCommand.Forward.class, f -> {
                        f.activation().materialize(device, Category.ACTIVATIONS).close();
                        channel[0].send(sender[0].channels().get(0), sender[0].stages().get(0), new StageCommand.LeftDevice(f.pos(), true));
                        return Behaviors.same();
                    })
                    .build();
        });
    }

    /** Reads length-prefixed messages whole and acknowledges each with a byte. */
    private static void echo(ServerSocket server) {
        while (true) {
            try (Socket s = server.accept()) {
                s.setTcpNoDelay(true);
                DataInputStream in = new DataInputStream(s.getInputStream());
                var ack = s.getOutputStream();
                byte[] buf = new byte[0];
                while (true) {
                    int n = in.readInt();
                    if (buf.length < n) buf = new byte[n];
                    in.readFully(buf, 0, n);
                    ack.write(1);
                    ack.flush();
                }
            } catch (IOException closed) {
                if (server.isClosed()) return;
            }
        }
    }

    /**
     * Measures each size against a peer that {@link #serve}s: {@code messages} messages with {@code window} of
     * them in flight for throughput, then {@code rounds} lone messages for latency, on each path in turn.
     */
    public static List<Result> measure(String peerPath, String peerChannel, int rawPort, List<Long> sizes, int messages, int window,
                                       int rounds, long maxMessage) throws IOException, InterruptedException {
        List<Result> results = new ArrayList<>();
        ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "bench", remote(maxMessage));
        try (CpuDevice device = new CpuDevice("source", 1);
             TensorChannel channel = TensorChannel.open(system, "127.0.0.1", maxMessage, null);
             Socket socket = new Socket(InetAddress.getLoopbackAddress(), rawPort)) {
            socket.setTcpNoDelay(true);
            ActorRef<StageCommand> peer = ActorRefResolver.get(system).resolveActorRef(peerPath);
            for (long size : sizes) {
                int floats = Math.toIntExact(size / Float.BYTES);
                Sender relay = new Sender(system, channel, peerChannel, peer, device);
                // Both paths in turn, three times, each taken at its median: neither is favoured by warming up first or by a hiccup of the machine.
                double[] relayRuns = new double[REPEATS], rawRuns = new double[REPEATS];
                // An untimed pass of each path first: the JIT compiles both before either is timed.
                relay.seconds(floats, Math.max(messages, WARM_UP), window);
                raw(socket, Math.toIntExact(size), Math.max(messages, WARM_UP), window);
                for (int r = 0; r < REPEATS; r++) {
                    relayRuns[r] = relay.seconds(floats, messages, window);
                    rawRuns[r] = raw(socket, Math.toIntExact(size), messages, window);
                }
                double relayed = median(relayRuns), raw = median(rawRuns);
                double relayLatency = latency(() -> relay.seconds(floats, 1, 1), rounds);
                double rawLatency = latency(() -> raw(socket, Math.toIntExact(size), 1, 1), rounds);
                results.add(new Result(size, size * (double) messages / relayed / (1 << 20), size * (double) messages / raw / (1 << 20),
                        relayLatency * 1e3, rawLatency * 1e3));
            }
        } finally {
            system.terminate();
            system.getWhenTerminated().toCompletableFuture().join();
        }
        return results;
    }

    private interface Timed {
        double seconds() throws IOException, InterruptedException;
    }

    private static final int REPEATS = 3;
    private static final int WARM_UP = 200;

    private static double latency(Timed t, int rounds) throws IOException, InterruptedException {
        double[] s = new double[rounds];
        for (int i = 0; i < rounds; i++) s[i] = t.seconds();
        return median(s);
    }

    private static double median(double[] s) {
        double[] sorted = s.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }

    /** The sending side of the tensor path: tensors on a CPU device, sent through the channel to the peer's actor. */
    private record Sender(ActorSystem<Void> system, TensorChannel channel, String peerChannel, ActorRef<StageCommand> peer,
                          CpuDevice device) {
        /** Seconds to send {@code messages} tensors of {@code floats} values, {@code window} in flight, after one warm-up. */
        double seconds(int floats, int messages, int window) throws InterruptedException {
            CompletableFuture<Long> done = new CompletableFuture<>();
            ActorRef<StageCommand> source = system.systemActorOf(Behaviors.setup(ctx -> {
                peer.tell(new StageCommand.Connect(List.of(ctx.getSelf()), List.of(channel.address())));
                int[] sent = {0}, acked = {0};
                long[] start = {0};
                Runnable send = () -> {
                    Position pos = new Position(0, Pass.TRAIN, 1, sent[0]++ % 1024, 1024, 1, 1, 1f);
                    channel.send(peerChannel, peer,
                            new StageCommand.Forward(pos, TensorPayload.of(device.empty(Category.ACTIVATIONS, floats / 256, 256))));
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
            }), "source-" + System.nanoTime(), org.apache.pekko.actor.typed.Props.empty());
            try {
                return done.get(10, TimeUnit.MINUTES) / 1e9;
            } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
                throw new IllegalStateException("the tensor path did not deliver " + messages + " messages to " + source + ": " + e, e);
            }
        }
    }

    /** Seconds to send {@code messages} messages of {@code bytes} over the socket pair, {@code window} in flight, after one warm-up. */
    private static double raw(Socket socket, int bytes, int messages, int window) throws IOException {
        DataOutputStream out = new DataOutputStream(socket.getOutputStream());
        InputStream acks = socket.getInputStream();
        byte[] payload = new byte[bytes];
        out.writeInt(bytes);
        out.write(payload);
        out.flush();
        if (acks.read() < 0) throw new IOException("the socket peer closed");
        long start = System.nanoTime();
        int sent = 0;
        for (; sent < Math.min(window, messages); sent++) {
            out.writeInt(bytes);
            out.write(payload);
        }
        out.flush();
        for (int acked = 0; acked < messages; acked++) {
            if (acks.read() < 0) throw new IOException("the socket peer closed");
            if (sent < messages) {
                out.writeInt(bytes);
                out.write(payload);
                out.flush();
                sent++;
            }
        }
        return (System.nanoTime() - start) / 1e9;
    }
}
