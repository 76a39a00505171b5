package relay.actors.bench;

import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import org.apache.pekko.Done;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.stream.BoundedSourceQueue;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.QueueOfferResult;
import org.apache.pekko.stream.javadsl.Flow;
import org.apache.pekko.stream.javadsl.Framing;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;
import org.apache.pekko.stream.javadsl.Tcp;
import org.apache.pekko.util.ByteString;
import relay.actors.StageCommand;
import relay.stages.tensor.cpu.CpuDevice;
import relay.transport.RelaySerializer;
import relay.transport.TensorPayload;

/**
 * Pekko Streams TCP carrying the tensor channel's messages: each a length-prefixed frame of the codec's
 * manifest and the message as Relay's serializer writes it (Protobuf head, raw values), one connection with
 * Pekko's own back-pressure (and its TLS where asked). The receiver frames the bytes, decodes each message,
 * lends the stage actor the tensor to take onto its device and acknowledges it with a byte once taken. What
 * the engine adds over the channel is what it is measured for: heap {@link ByteString}s, so each message's
 * values are copied out of device memory on the way in and into a device on the way out.
 */
final class StreamsTcp implements TransportBench.Path {
    private final String name;
    private final RelaySerializer serializer;
    private final CpuDevice device;
    private final BoundedSourceQueue<ByteString> out;
    /** One permit per acknowledged message. */
    private final Semaphore acked = new Semaphore(0);
    private final long limit;

    private StreamsTcp(String name, ActorSystem<?> system, CpuDevice device, int port, long limit, SSLContext tls) {
        this.name = name;
        this.limit = limit;
        this.serializer = TransportBench.serializer(system);
        this.device = device;
        InetSocketAddress peer = new InetSocketAddress("127.0.0.1", port);
        Flow<ByteString, ByteString, ?> connection = tls == null ? Tcp.get(system).outgoingConnection("127.0.0.1", port)
                : Tcp.get(system).outgoingConnectionWithTls(peer, engine(tls, true));
        this.out = Source.<ByteString>queue(QUEUE).via(connection)
                .to(Sink.foreach(b -> acked.release(b.size())))
                .run(Materializer.matFromSystem(system));
    }

    /** The sending end, connected to a {@link #bind}ed port (TLS when {@code tls} is not null) that takes messages up to {@code limit}. */
    static StreamsTcp connect(String name, ActorSystem<?> system, CpuDevice device, int port, long limit, SSLContext tls) {
        return new StreamsTcp(name, system, device, port, limit, tls);
    }

    /** Messages offered to the connection before the sender waits: more than any window. */
    private static final int QUEUE = 64;

    @Override
    public String name() {
        return name;
    }

    @Override
    public long limit() {
        return limit;
    }

    @Override
    public double seconds(long bytes, int messages, int window) throws InterruptedException {
        long start = System.nanoTime();
        for (int i = 0; i < messages; i++) {
            if (i >= window) awaitAcks(1);
            ByteString frame = frame(TransportBench.forward(device, bytes, i));
            for (QueueOfferResult r; (r = out.offer(frame)) != QueueOfferResult.enqueued(); ) {
                if (r != QueueOfferResult.dropped()) throw new IllegalStateException("the connection ended: " + r);
                Thread.onSpinWait();
            }
        }
        awaitAcks(Math.min(window, messages));
        return (System.nanoTime() - start) / 1e9;
    }

    private void awaitAcks(int n) throws InterruptedException {
        if (!acked.tryAcquire(n, TransportBench.TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
            throw new IllegalStateException("no acknowledgement in " + TransportBench.TIMEOUT_SECONDS + " s");
        }
    }

    /** Length, manifest, message: the message's values copied from the device into the frame (which frees the tensor). */
    private ByteString frame(StageCommand.Forward m) {
        byte[] manifest = serializer.manifest(m).getBytes(StandardCharsets.UTF_8);
        byte[] body = serializer.toBinary(m);
        ByteBuffer head = ByteBuffer.allocate(8 + manifest.length).putInt(4 + manifest.length + body.length).putInt(manifest.length).put(manifest);
        return ByteString.fromArrayUnsafe(head.array()).concat(ByteString.fromArrayUnsafe(body));
    }

    @Override
    public void close() {
        try {
            out.complete();
        } catch (IllegalStateException ended) {
            // The connection ended already (the measurement said why).
        }
    }

    /**
     * The receiving end on a free port of loopback: frames decoded and lent to {@code sink}, each acknowledged
     * with one byte once the sink took it; returns the port.
     */
    static int bind(ActorSystem<?> system, ActorRef<Object> sink, long maxMessage, SSLContext tls) {
        RelaySerializer serializer = TransportBench.serializer(system);
        Flow<ByteString, ByteString, ?> handler = Flow.<ByteString>create()
                .via(Framing.lengthField(4, 0, Math.toIntExact(maxMessage), ByteOrder.BIG_ENDIAN))
                .mapAsync(4, frame -> land(system, sink, serializer, frame))
                .map(done -> ByteString.fromArrayUnsafe(new byte[] {1}));
        var connections = tls == null ? Tcp.get(system).bind("127.0.0.1", 0) : Tcp.get(system).bindWithTls("127.0.0.1", 0, engine(tls, false));
        return connections.to(Sink.foreach(c -> c.handleWith(handler, Materializer.matFromSystem(system))))
                .run(Materializer.matFromSystem(system))
                .toCompletableFuture().join().localAddress().getPort();
    }

    /** Decodes a frame, its tensor's values left where they are, and has the sink take it. */
    private static CompletionStage<Done> land(ActorSystem<?> system, ActorRef<Object> sink, RelaySerializer serializer, ByteString frame)
            throws java.io.NotSerializableException {
        ByteBuffer b = frame.asByteBuffer();
        b.position(4);
        byte[] manifest = new byte[b.getInt()];
        b.get(manifest);
        Object[] message = new Object[1];
        java.io.NotSerializableException[] failed = new java.io.NotSerializableException[1];
        TensorPayload.lending(new TensorPayload.Loan(() -> { }, () -> { }), () -> {
            try {
                message[0] = serializer.fromBinary(b.slice(), new String(manifest, StandardCharsets.UTF_8));
            } catch (java.io.NotSerializableException e) {
                failed[0] = e;
            }
        });
        if (failed[0] != null) throw failed[0];
        StageCommand.Forward f = (StageCommand.Forward) message[0];
        return AskPattern.ask(sink, (ActorRef<Done> replyTo) -> new TransportBench.Take(f, replyTo), Duration.ofMinutes(2), system.scheduler());
    }

    /** An engine of the context, as the client or as the server asking for the client's certificate. */
    private static Supplier<SSLEngine> engine(SSLContext tls, boolean client) {
        return () -> {
            SSLEngine e = tls.createSSLEngine();
            e.setUseClientMode(client);
            if (!client) e.setNeedClientAuth(true);
            return e;
        };
    }
}
