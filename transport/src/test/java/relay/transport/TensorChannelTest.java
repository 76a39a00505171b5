package relay.transport;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import relay.stages.memory.Category;
import relay.stages.tensor.Tensor;
import relay.stages.tensor.cpu.CpuDevice;

/**
 * The tensor channel over real loopback connections: tensors arrive exact and in order and are taken where
 * they landed, nothing is leaked, a stranger's bytes and oversized frames are cut off without disturbing the
 * run, a receiver that does not keep up holds its senders back, and TLS lets in only trusted peers.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class TensorChannelTest {
    static final long MAX = 8 << 20;
    static ActorSystem<Void> system;
    /** Messages the receiving actor got, for the test to take. */
    static final BlockingQueue<EchoCodecs.Echo> received = new LinkedBlockingQueue<>();
    static ActorRef<EchoCodecs.Echo> receiver;
    CpuDevice sender, taker;
    TensorChannel from, to;

    @BeforeAll
    static void start() {
        system = ActorSystem.create(Behaviors.empty(), "channel-test");
        receiver = system.systemActorOf(Behaviors.<EchoCodecs.Echo>receiveMessage(m -> {
            received.add(m);
            return Behaviors.same();
        }), "receiver", org.apache.pekko.actor.typed.Props.empty());
    }

    @AfterAll
    static void stop() {
        system.terminate();
    }

    @BeforeEach
    void open() throws IOException {
        sender = new CpuDevice("cpu-send", 1);
        taker = new CpuDevice("cpu-take", 1);
        from = TensorChannel.open(system, "127.0.0.1", MAX, null);
        to = TensorChannel.open(system, "127.0.0.1", MAX, null);
    }

    @AfterEach
    void close() {
        from.close();
        to.close();
        received.forEach(m -> m.tensor().discard());
        received.clear();
        assertEquals(0, sender.memory().currentTotal(), "the sender's tensors are freed once written");
        assertEquals(0, taker.memory().currentTotal(), "every received tensor freed");
        sender.close();
        taker.close();
    }

    private Tensor tensor(int rows, int cols, long seed) {
        float[] v = new float[rows * cols];
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < v.length; i++) v[i] = (float) r.nextGaussian();
        return sender.allocate(Category.ACTIVATIONS, rows, cols).copyFrom(v);
    }

    private EchoCodecs.Echo next() throws InterruptedException {
        EchoCodecs.Echo m = received.poll(20, TimeUnit.SECONDS);
        assertTrue(m != null, "a message arrived");
        return m;
    }

    @Test
    void tensorsArriveExactInOrderAndAreTakenWhereTheyLanded() throws Exception {
        long inFlight = TensorPayload.inFlight().current(Category.COMMUNICATION);
        int[][] shapes = {{1, 1}, {0, 16}, {3, 5}, {1024, 1025}, {17, 1}, {256, 4096}, {1280, 1024}};
        // Messages written by their senders and messages handed to the connection's writer, interleaved.
        assertTrue(4L * 1280 * 1024 > TensorChannel.DIRECT && 4L * 256 * 4096 < TensorChannel.DIRECT, "both ways of writing are taken");
        List<float[]> sent = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            int[] s = shapes[i % shapes.length];
            try (Tensor t = tensor(s[0], s[1], i)) {
                sent.add(t.toArray());
            }
        }
        // Senders wait while the receiver has not taken enough: they send from threads of their own.
        CompletableFuture<Void> sending = CompletableFuture.runAsync(() -> {
            for (int i = 0; i < 40; i++) {
                int[] s = shapes[i % shapes.length];
                to.send(to.address(), receiver, new EchoCodecs.Echo(TensorPayload.of(tensor(s[0], s[1], i))));
                from.send(to.address(), receiver, new EchoCodecs.Echo(TensorPayload.of(tensor(s[0], s[1], i))));
            }
        });
        // Two senders (a channel to itself, and another), each in its own order: every message once, each sender's in order.
        List<float[]> got = new ArrayList<>();
        for (int i = 0; i < 80; i++) {
            try (Tensor t = next().tensor().materialize(taker, Category.ACTIVATIONS)) {
                got.add(t.toArray());
                if (t.size() > 0) assertEquals(t.size() * 4L, taker.memory().current(Category.ACTIVATIONS), "counted on the device that took it");
            }
        }
        sending.get(20, TimeUnit.SECONDS);
        for (float[] s : sent) {
            int first = indexOf(got, s);
            assertTrue(first >= 0, "a message of " + s.length + " values arrived exact");
            got.remove(first);
            assertTrue(indexOf(got, s) >= 0, "and its twin from the other channel");
            got.remove(indexOf(got, s));
        }
        assertEquals(inFlight, TensorPayload.inFlight().current(Category.COMMUNICATION), "nothing left in flight");
    }

    private static int indexOf(List<float[]> l, float[] v) {
        for (int i = 0; i < l.size(); i++) if (java.util.Arrays.equals(l.get(i), v)) return i;
        return -1;
    }

    @Test
    void aSendersOrderIsKept() throws Exception {
        CompletableFuture<Void> sending = CompletableFuture.runAsync(() -> {
            for (int i = 0; i < 200; i++) {
                // Large ones go to the connection's writer, small ones are written by this thread when it is idle.
                int n = i % 7 == 0 ? TensorChannel.DIRECT / Float.BYTES + 1 : 1;
                Tensor t = sender.allocate(Category.ACTIVATIONS, 1, n).copyFrom(filled(n, i));
                from.send(to.address(), receiver, new EchoCodecs.Echo(TensorPayload.of(t)));
            }
        });
        for (int i = 0; i < 200; i++) {
            try (Tensor t = next().tensor().materialize(taker, Category.ACTIVATIONS)) {
                assertEquals(i, t.toArray()[0], "message " + i + " in its place (large and small ones mixed)");
            }
        }
        sending.get(20, TimeUnit.SECONDS);
    }

    private static float[] filled(int n, float v) {
        float[] a = new float[n];
        java.util.Arrays.fill(a, v);
        return a;
    }

    @Test
    void aMessageOverTheLimitIsRefusedBeforeItLeaves() {
        Tensor t = sender.allocate(Category.ACTIVATIONS, 3 << 20);
        EchoCodecs.Echo m = new EchoCodecs.Echo(TensorPayload.of(t));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> from.send(to.address(), receiver, m));
        assertTrue(e.getMessage().contains("relay.cluster.max-message"), e.getMessage());
        m.tensor().discard();
    }

    /** Junk, a frame larger than the limit, and bytes that are not a message: the stranger is cut off, the channel serves on. */
    @Test
    void strangersAreCutOffAndTheChannelServesOn() throws Exception {
        String[] hostPort = to.address().split(":");
        try (Socket junk = new Socket(InetAddress.getLoopbackAddress(), Integer.parseInt(hostPort[1]))) {
            junk.getOutputStream().write("GET / HTTP/1.1\r\nHost: x\r\n\r\n".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
            assertClosed(junk);
        }
        try (Socket huge = new Socket(InetAddress.getLoopbackAddress(), Integer.parseInt(hostPort[1]))) {
            DataOutputStream out = new DataOutputStream(huge.getOutputStream());
            out.writeInt(TensorChannel.MAGIC);
            out.writeInt(Integer.MAX_VALUE);
            out.flush();
            assertClosed(huge);
        }
        try (Socket garbled = new Socket(InetAddress.getLoopbackAddress(), Integer.parseInt(hostPort[1]))) {
            DataOutputStream out = new DataOutputStream(garbled.getOutputStream());
            out.writeInt(TensorChannel.MAGIC);
            byte[] noise = new byte[4096];
            new SplittableRandom(3).nextBytes(noise);
            for (int i = 0; i < 4; i++) {
                out.writeInt(noise.length + 4);
                out.writeInt(0);
                out.write(noise);
            }
            out.flush();
            Tensor t = tensor(8, 8, 9);
            float[] v = t.toArray();
            from.send(to.address(), receiver, new EchoCodecs.Echo(TensorPayload.of(t)));
            try (Tensor got = next().tensor().materialize(taker, Category.ACTIVATIONS)) {
                assertArrayEquals(v, got.toArray(), 0f);
            }
            assertNull(received.poll(200, TimeUnit.MILLISECONDS), "frames that are not messages are dropped");
        }
    }

    /** The channel closed the connection: the stranger reads its end, or a reset for what it wrote and nobody read. */
    private static void assertClosed(Socket s) throws IOException {
        s.setSoTimeout(10_000);
        try {
            assertEquals(-1, s.getInputStream().read(), "closed by the channel");
        } catch (java.net.SocketException reset) {
            assertTrue(String.valueOf(reset.getMessage()).contains("reset"), reset.toString());
        }
    }

    /**
     * A receiver that takes nothing: the reader holds {@link TensorChannel#QUEUE} frames and reads no more,
     * the connection and the writer's queue fill, and the sender waits — on the writer's queue, not inside a
     * write to the full socket (a stage must not hang on a peer's socket); once the receiver takes what it got,
     * everything arrives.
     */
    @Test
    void aSlowReceiverHoldsItsSenderBack() throws Exception {
        int messages = 64;
        java.util.concurrent.atomic.AtomicReference<Throwable> failed = new java.util.concurrent.atomic.AtomicReference<>();
        // Messages of 1 MiB: each one the sender would write itself were the connection idle.
        Thread sending = new Thread(() -> {
            try {
                for (int i = 0; i < messages; i++) {
                    Tensor t = sender.allocate(Category.ACTIVATIONS, 1 << 18).copyFrom(filled(1 << 18, i));
                    from.send(to.address(), receiver, new EchoCodecs.Echo(TensorPayload.of(t)));
                }
            } catch (Throwable e) {
                failed.set(e);
            }
        }, "sending-stage");
        sending.start();
        // However slow the machine: the reader fills its queue (waited for, not timed), then reads no more while the
        // sender waits. A correct channel passes at any speed; one that read on would be caught reading within the pause.
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (received.size() < TensorChannel.QUEUE && System.nanoTime() < deadline) Thread.sleep(10);
        Thread.sleep(500);
        assertEquals(TensorChannel.QUEUE, received.size(), "the reader stops at " + TensorChannel.QUEUE + " frames nobody took");
        assertTrue(sending.isAlive(), "the sender waits");
        String where = java.util.Arrays.toString(sending.getStackTrace());
        assertTrue(where.contains("ArrayBlockingQueue") && !where.contains("SocketChannelImpl.write"),
                "on the writer's queue, not on the socket: " + where);
        for (int i = 0; i < messages; i++) {
            try (Tensor t = next().tensor().materialize(taker, Category.ACTIVATIONS)) {
                assertEquals(i, t.toArray()[0]);
            }
        }
        sending.join(20_000);
        assertTrue(!sending.isAlive() && failed.get() == null, "every message sent: " + failed.get());
    }

    @Test
    void tlsLetsInOnlyTrustedPeers(@TempDir Path dir) throws Exception {
        SSLContext node = tls(dir, "node"), stranger = tls(dir, "stranger");
        try (TensorChannel a = TensorChannel.open(system, "127.0.0.1", MAX, node);
             TensorChannel b = TensorChannel.open(system, "127.0.0.1", MAX, node);
             TensorChannel c = TensorChannel.open(system, "127.0.0.1", MAX, stranger)) {
            Tensor t = tensor(64, 64, 4);
            float[] v = t.toArray();
            a.send(b.address(), receiver, new EchoCodecs.Echo(TensorPayload.of(t)));
            try (Tensor got = next().tensor().materialize(taker, Category.ACTIVATIONS)) {
                assertArrayEquals(v, got.toArray(), 0f);
            }
            c.send(b.address(), receiver, new EchoCodecs.Echo(TensorPayload.of(tensor(4, 4, 5))));
            assertNull(received.poll(2, TimeUnit.SECONDS), "a peer whose certificate is not trusted delivers nothing");
            Tensor plain = tensor(4, 4, 6);
            from.send(b.address(), receiver, new EchoCodecs.Echo(TensorPayload.of(plain)));
            assertNull(received.poll(2, TimeUnit.SECONDS), "nor does a peer without TLS");
        }
    }

    /** A key store holding a fresh self-signed key of its own, used as its trust store too. */
    private static SSLContext tls(Path dir, String name) throws Exception {
        Path store = dir.resolve(name + ".p12");
        Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "keytool").toString(), "-genkeypair", "-alias", name,
                "-keyalg", "EC", "-groupname", "secp256r1", "-dname", "CN=" + name, "-validity", "2", "-storetype", "PKCS12",
                "-keystore", store.toString(), "-storepass", "secret", "-keypass", "secret").redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        assertEquals(0, p.waitFor(), out);
        return TlsContext.of(store.toString(), "secret", store.toString(), "secret");
    }
}
