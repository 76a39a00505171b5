package relay.transport;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import relay.stages.memory.Category;

/**
 * The data path for tensors between JVMs: one TCP connection (TLS if configured) from each node to each node
 * it sends to, beside Pekko's remoting, which carries everything else. A message for an actor of another
 * node is written — its Protobuf header, then the tensor's values straight from device memory, with no copy
 * on the way — by its sender itself when the connection is idle and the message is at most {@link #DIRECT},
 * else by a writer thread of that connection; either frees the tensor. On the other side a reader thread checks each
 * frame's size against the limit before reading it whole into a buffer of its own, decodes it with Relay's
 * codecs and tells the local actor; a CPU device then takes the tensor's values where they landed, as its
 * memory. Messages from one node to one actor keep their order. Each connection opens with a magic word; a
 * peer that does not say it, or sends a frame that is too large, is cut off, and a frame that is not a
 * message is dropped, without disturbing anyone else.
 *
 * <p>Back-pressure, end to end: at most {@link #QUEUE} frames of a connection wait for their receivers to take
 * them; then its reader stops reading, TCP's window fills, the writer waits, its queue ({@link #QUEUE}
 * messages) fills, and the sending stage waits — a fast stage cannot flood a slow one. Bytes being written
 * or received and not yet taken by a device are counted as communication in {@link TensorPayload#inFlight()}.
 *
 * <p>Why it is written here and not taken from Pekko: measured side by side (`relay bench transport`, two JVMs
 * on loopback, 2026-12-05, 2-core AMD EPYC), against a socket pair with direct buffers on both ends, this
 * channel moved 0.96× the pair's MiB/s at 1 MiB and 0.96–1.20× from 1 to 64 MiB; Pekko Streams TCP carrying the same
 * messages 0.20–0.37 (its heap ByteStrings copy every value twice more), Artery over TCP 0.08–0.17, and Artery
 * over Aeron UDP never carried a 256 KiB message in 60 s. With TLS the channel (0.17–0.20) still moved three
 * times what Streams TCP did with its TLS (0.05–0.07). No engine came within 10 % of it.
 */
public final class TensorChannel implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(TensorChannel.class);
    /** Every connection starts with these four bytes ("RLY1"). */
    static final int MAGIC = 0x524c5931;
    /** Received frames start on this boundary in memory, and a tensor's values on this boundary of their frame. */
    static final int ALIGN = 64;
    /** Messages queued for one connection before a sender waits. */
    static final int QUEUE = 4;

    private final RelaySerializer serializer;
    private final ActorRefResolver refs;
    private final long maxMessage;
    private final SSLContext tls;
    private final ServerSocket server;
    private final String address;
    private final Map<String, Writer> writers = new ConcurrentHashMap<>();
    private final Map<String, ActorRef<Object>> targets = new ConcurrentHashMap<>();
    private final Frames frames = new Frames();
    /** The node each peer channel belongs to, as the actors named it ({@link #peer}). */
    private final Map<String, String> peers = new ConcurrentHashMap<>();
    /** Hears of a peer node whose process is gone ({@link #onPeerGone}). */
    private volatile java.util.function.Consumer<String> gone = node -> { };
    /** Connections in, closed with the channel. */
    private final java.util.Set<Socket> accepted = ConcurrentHashMap.newKeySet();
    private volatile boolean closed;

    private TensorChannel(ActorSystem<?> system, long maxMessage, SSLContext tls, ServerSocket server, String host) {
        this.serializer = new RelaySerializer((org.apache.pekko.actor.ExtendedActorSystem) Adapter.toClassic(system));
        this.refs = ActorRefResolver.get(system);
        this.maxMessage = maxMessage;
        this.tls = tls;
        this.server = server;
        this.address = host + ":" + server.getLocalPort();
    }

    /**
     * A channel listening on {@code host} (any free port) for the actors of {@code system}; frames larger than
     * {@code maxMessage} are refused; with {@code tls} (null: plain TCP) every connection is TLS with mutual
     * authentication.
     */
    public static TensorChannel open(ActorSystem<?> system, String host, long maxMessage, SSLContext tls) throws IOException {
        // Plain TCP goes through NIO channels, so frames are written from and read into direct buffers without a copy on the heap.
        ServerSocket server = tls == null ? java.nio.channels.ServerSocketChannel.open().socket() : tls.getServerSocketFactory().createServerSocket();
        if (server instanceof SSLServerSocket s) s.setNeedClientAuth(true);
        server.bind(new InetSocketAddress(InetAddress.getByName(host), 0));
        TensorChannel c = new TensorChannel(system, maxMessage, tls, server, host);
        Thread t = new Thread(c::accept, "relay-tensor-accept");
        t.setDaemon(true);
        t.start();
        return c;
    }

    /** Where other nodes reach this channel: host:port. */
    public String address() {
        return address;
    }

    /** The channel at {@code channel} is node {@code node}'s (its actor system's address): a loss is told by that name. */
    public void peer(String channel, String node) {
        peers.put(channel, node);
    }

    /**
     * {@code listener} hears the node (as {@link #peer} named it) whose end of a connection this channel sends on
     * closed, and whose channel then refuses a new connection: its process is gone — a far faster sign than missed
     * heartbeats, which must allow for a node busy computing. A peer that still accepts, or cannot be reached at
     * all (its machine may be down, or the network), is left to the heartbeats.
     */
    public void onPeerGone(java.util.function.Consumer<String> listener) {
        gone = listener;
    }

    /**
     * Sends a message to an actor of the node whose channel is at {@code to}; waits while that connection's
     * queue is full. A message that is too large is an error here, before it leaves.
     */
    public void send(String to, ActorRef<?> target, WireMessage message) {
        int size = serializer.size(message);
        if (size > maxMessage - 4096) {
            throw new IllegalStateException("a " + message.getClass().getSimpleName() + " of " + size + " bytes exceeds relay.cluster.max-message ("
                    + maxMessage + " bytes); raise it");
        }
        Writer w = writers.computeIfAbsent(to, Writer::new);
        try {
            w.offer(new Outgoing(refs.toSerializationFormat(target), message), size <= DIRECT);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while sending to " + to, e);
        } catch (IOException e) {
            throw new ConnectionLost("the tensor connection to " + to + " failed: " + e, e);
        }
    }

    /**
     * A message this small (a tensor of up to 4 MiB and its head; a pipeline's activations usually are) is
     * written by its sender itself when nothing waits before it: a hand-over to the writer's thread costs a
     * thread's wake-up, which at 1 MiB was a third of the round trip (2026-12-05, `relay bench transport`).
     * Larger ones go through the writer, so that their sender computes on while they are written.
     */
    static final int DIRECT = (4 << 20) + (64 << 10);

    /** A message to write; with no message, a call to the writer's thread to finish the frame its sender began. */
    private record Outgoing(String target, WireMessage message) {}

    private static final Outgoing FINISH = new Outgoing(null, null);

    /**
     * How long a sender waits for a full socket to take its frame before the writer's thread takes over: long
     * enough for a receiver reading on (4 MiB at loopback speed), short enough that two stages writing to each
     * other while neither takes its messages cannot wait on each other.
     */
    static final long SENDER_WAIT_NANOS = 10_000_000;

    /** A frame on its way out: its head and the payload's values where they are, its size, and what it frees once written. */
    private record Frame(ByteBuffer[] buffers, int size, TensorPayload payload) {
        long left() {
            long n = 0;
            for (ByteBuffer b : buffers) n += b.remaining();
            return n;
        }
    }

    /**
     * One connection out: a thread writes what the queue holds, in order, one frame at a time; a small message
     * finds the connection idle (nothing queued or being written) and is written at once by its sender. Plain TCP
     * is written without blocking: what the socket does not take of a sender's frame within
     * {@link #SENDER_WAIT_NANOS} is left to the writer's thread, ahead of anything queued, so that a stage never
     * hangs on a full socket.
     */
    private final class Writer {
        final BlockingQueue<Outgoing> queue = new ArrayBlockingQueue<>(QUEUE);
        final String to;
        final Thread thread;
        private final java.util.concurrent.locks.ReentrantLock lock = new java.util.concurrent.locks.ReentrantLock();
        /** Messages queued or being written by the writer's thread, and a sender's unfinished frame. */
        private final java.util.concurrent.atomic.AtomicInteger pending = new java.util.concurrent.atomic.AtomicInteger();
        /** The connection is gone: nothing more is written. */
        private volatile boolean ended;
        private java.nio.channels.GatheringByteChannel out;
        /** Plain TCP: the writer's thread waits here for the socket to take more. Null for TLS, whose writes block. */
        private java.nio.channels.Selector writable;
        private ByteBuffer head = ByteBuffer.allocateDirect(1 << 16);
        /** A sender's frame that the socket took only part of (guarded by the lock). */
        private Frame unfinished;

        Writer(String to) {
            this.to = to;
            thread = new Thread(this::run, "relay-tensor-to-" + to);
            thread.setDaemon(true);
            thread.start();
        }

        void offer(Outgoing o, boolean small) throws InterruptedException, IOException {
            if (small && lock.tryLock()) {
                try {
                    if (pending.get() == 0 && out != null) {
                        Frame f = frame(o);
                        if (send(f, SENDER_WAIT_NANOS)) return;
                        // The writer's thread finishes it before anything else.
                        unfinished = f;
                        pending.incrementAndGet();
                        o = FINISH;
                    }
                } finally {
                    lock.unlock();
                }
            }
            pending.incrementAndGet();
            while (!queue.offer(o, 100, java.util.concurrent.TimeUnit.MILLISECONDS)) {
                if (ended) {
                    if (o != FINISH) dropped(o.message());
                    drain();
                    throw new IOException("the connection is closed");
                }
            }
            // The writer may have ended while this message went in: then nobody else frees it.
            if (ended) drain();
        }

        /** Frees what will not be written. */
        private void drain() {
            for (Outgoing left; (left = queue.poll()) != null; ) {
                if (left != FINISH) dropped(left.message());
            }
            lock.lock();
            try {
                if (unfinished != null) written(unfinished);
                unfinished = null;
            } finally {
                lock.unlock();
            }
        }

        private void run() {
            try (Socket s = connect(to)) {
                lock.lock();
                try {
                    out = gathering(s);
                    ByteBuffer magic = ByteBuffer.allocate(4).putInt(MAGIC).flip();
                    while (magic.hasRemaining()) out.write(magic);
                    if (s.getChannel() != null) {
                        s.getChannel().configureBlocking(false);
                        writable = java.nio.channels.Selector.open();
                        s.getChannel().register(writable, java.nio.channels.SelectionKey.OP_WRITE);
                    }
                } finally {
                    lock.unlock();
                }
                Thread watch = new Thread(() -> watch(s, to), "relay-tensor-watch-" + to);
                watch.setDaemon(true);
                watch.start();
                while (!closed) {
                    Outgoing o = queue.take();
                    lock.lock();
                    try {
                        if (unfinished != null) {
                            Frame f = unfinished;
                            unfinished = null;
                            pending.decrementAndGet();
                            send(f, Long.MAX_VALUE);
                        }
                        if (o != FINISH) send(frame(o), Long.MAX_VALUE);
                    } finally {
                        pending.decrementAndGet();
                        lock.unlock();
                    }
                }
            } catch (IOException e) {
                if (!closed) LOG.error("the tensor connection to {} failed: {}", to, e.toString());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                ended = true;
                writers.remove(to, this);
                drain();
                if (writable != null) closeQuietly(writable);
            }
        }

        /**
         * One frame: its length; padding, so that the values start on an {@link #ALIGN}-byte boundary of the
         * frame (where a CPU device can take them as they are); the target's path and the codec's manifest; the
         * message's head; then the payload's values, written from where they are. Counted as communication
         * until written.
         */
        private Frame frame(Outgoing o) {
            byte[] target = o.target().getBytes(StandardCharsets.UTF_8), manifest = serializer.manifest(o.message())
                    .getBytes(StandardCharsets.UTF_8);
            TensorPayload payload = serializer.payload(o.message());
            long values = payload == null ? 0 : payload.bytes();
            // The frame after its length: padding's length, padding, target, manifest, head, values.
            int before = 4 + 4 + target.length + 4 + manifest.length + serializer.size(o.message()) - (int) values;
            int pad = (ALIGN - before % ALIGN) % ALIGN;
            int size = before + pad + (int) values;
            if (head.capacity() < 4 + before + pad) head = ByteBuffer.allocateDirect(4 + before + pad);
            head.clear();
            head.putInt(size).putInt(pad).position(head.position() + pad);
            head.putInt(target.length).put(target).putInt(manifest.length).put(manifest);
            serializer.writeHead(o.message(), head);
            head.flip();
            ByteBuffer[] buffers = payload == null ? new ByteBuffer[] {head} : new ByteBuffer[] {head, payload.view()};
            if (payload != null && buffers[1].remaining() != values) {
                payload.discard();
                throw new IllegalStateException("a tensor of " + values + " bytes offered " + buffers[1].remaining() + " to write");
            }
            TensorPayload.inFlight().allocated(Category.COMMUNICATION, size);
            return new Frame(buffers, size, payload);
        }

        /**
         * Writes what is left of the frame; true once all of it is written (and its tensor freed). Where the socket
         * takes no more for {@code waitNanos} in all, stops (false: the rest is still to write).
         */
        private boolean send(Frame f, long waitNanos) throws IOException {
            long deadline = System.nanoTime() + Math.min(waitNanos, Long.MAX_VALUE / 2);
            try {
                while (f.left() > 0) {
                    if (out.write(f.buffers()) > 0) continue;
                    long left = deadline - System.nanoTime();
                    if (left <= 0) return false;
                    writable.select(Math.max(1, Math.min(100, left / 1_000_000)));
                    writable.selectedKeys().clear();
                    if (closed) throw new IOException("the channel is closed");
                }
            } catch (IOException | RuntimeException e) {
                written(f);
                throw e;
            }
            written(f);
            return true;
        }

        /** The frame is out (or never will be): it leaves the ledger and frees its tensor. */
        private void written(Frame f) {
            TensorPayload.inFlight().released(Category.COMMUNICATION, f.size());
            if (f.payload() != null) f.payload().discard();
        }
    }

    /**
     * Reads the connection out, on which the peer never writes: the read ends when the peer's end closes (or this
     * one does). Unless this channel is closing, a peer that then refuses a new connection is gone.
     */
    private void watch(Socket s, String to) {
        java.nio.channels.SocketChannel ch = s.getChannel();
        try {
            if (ch == null) {
                InputStream in = s.getInputStream();
                while (in.read() >= 0) {
                    // Nothing comes this way.
                }
            } else {
                // The writer made the channel non-blocking: wait for it to be readable (at its end, it is).
                try (java.nio.channels.Selector readable = java.nio.channels.Selector.open()) {
                    ch.register(readable, java.nio.channels.SelectionKey.OP_READ);
                    ByteBuffer b = ByteBuffer.allocate(64);
                    while (ch.isOpen()) {
                        readable.select(1_000);
                        readable.selectedKeys().clear();
                        if (ch.read(b.clear()) < 0) break;
                    }
                }
            }
        } catch (IOException | java.nio.channels.ClosedSelectorException ended) {
            // Reset by the peer, or closed here.
        }
        String node = peers.get(to);
        if (closed || node == null || !refuses(to)) return;
        LOG.warn("the tensor channel of node {} at {} closed and refuses connections: its process is gone", node, to);
        gone.accept(node);
    }

    /** Whether nothing listens at host:port any more (a connection refused there); a timeout or another error says nothing. */
    private static boolean refuses(String to) {
        try (Socket probe = new Socket()) {
            probe.connect(address(to), 2_000);
            return false;
        } catch (java.net.ConnectException refused) {
            return true;
        } catch (IOException other) {
            return false;
        }
    }

    /** A message that will not be delivered frees the tensor it carries. */
    private void dropped(WireMessage m) {
        serializer.discard(m);
    }

    /** A channel's host:port as a socket address. */
    private static InetSocketAddress address(String to) {
        int colon = to.lastIndexOf(':');
        return new InetSocketAddress(to.substring(0, colon), Integer.parseInt(to.substring(colon + 1)));
    }

    private Socket connect(String to) throws IOException {
        Socket s = tls == null ? java.nio.channels.SocketChannel.open().socket() : tls.getSocketFactory().createSocket();
        s.connect(address(to), 10_000);
        s.setTcpNoDelay(true);
        if (s instanceof SSLSocket ssl) ssl.startHandshake();
        return s;
    }

    /** The socket as a channel: its own for plain TCP (writes straight from direct buffers), through its stream for TLS. */
    private static java.nio.channels.GatheringByteChannel gathering(Socket s) throws IOException {
        if (s.getChannel() != null) return s.getChannel();
        WritableByteChannel w = Channels.newChannel(s.getOutputStream());
        return new java.nio.channels.GatheringByteChannel() {
            @Override
            public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
                long n = 0;
                for (int i = offset; i < offset + length; i++) while (srcs[i].hasRemaining()) n += w.write(srcs[i]);
                return n;
            }

            @Override
            public long write(ByteBuffer[] srcs) throws IOException {
                return write(srcs, 0, srcs.length);
            }

            @Override
            public int write(ByteBuffer src) throws IOException {
                return w.write(src);
            }

            @Override
            public boolean isOpen() {
                return w.isOpen();
            }

            @Override
            public void close() throws IOException {
                w.close();
            }
        };
    }

    private void accept() {
        while (!closed) {
            try {
                Socket s = server.accept();
                accepted.add(s);
                if (closed) closeQuietly(s);
                Thread t = new Thread(() -> read(s), "relay-tensor-from-" + s.getRemoteSocketAddress());
                t.setDaemon(true);
                t.start();
            } catch (IOException e) {
                if (!closed) LOG.warn("the tensor channel stopped accepting: {}", e.toString());
                return;
            }
        }
    }

    /** One connection in: frames decoded and told to their actors, until the peer closes or breaks the rules. */
    private void read(Socket s) {
        String peer = String.valueOf(s.getRemoteSocketAddress());
        try (s) {
            s.setTcpNoDelay(true);
            InputStream raw = s.getInputStream();
            ReadableByteChannel ch = s.getChannel() != null ? s.getChannel() : Channels.newChannel(raw);
            // Each length in one read of the channel (a stream's readInt makes four).
            ByteBuffer word = ByteBuffer.allocateDirect(4);
            if (readInt(ch, word) != MAGIC) {
                LOG.warn("a connection from {} to the tensor channel did not start as one of Relay's: closed", peer);
                return;
            }
            java.util.concurrent.Semaphore untaken = new java.util.concurrent.Semaphore(QUEUE);
            while (!closed) {
                int size = readInt(ch, word);
                if (size < 8 || size > maxMessage) {
                    LOG.warn("a frame of {} bytes from {} is outside 8..{} (relay.cluster.max-message): connection closed", size, peer, maxMessage);
                    return;
                }
                // Back-pressure: no more than QUEUE frames from one connection wait for their receivers at a time.
                while (!untaken.tryAcquire(100, java.util.concurrent.TimeUnit.MILLISECONDS)) {
                    if (closed) return;
                }
                ByteBuffer frame = frames.take(size);
                while (frame.hasRemaining()) {
                    if (ch.read(frame) < 0) throw new EOFException();
                }
                frame.flip();
                // A tensor's values stay in this buffer until a device takes them; a CPU device keeps the buffer as the tensor's memory.
                TensorPayload.Loan loan = new TensorPayload.Loan(untaken::release, () -> frames.give(frame));
                if (!TensorPayload.lending(loan, () -> deliver(frame, peer))) {
                    untaken.release();
                    frames.give(frame);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (EOFException closedByPeer) {
            // The peer closed its end: the run ended or the node left.
        } catch (IOException | RuntimeException e) {
            if (!closed) LOG.warn("the tensor connection from {} failed: {}", peer, e.toString());
        } finally {
            accepted.remove(s);
        }
    }

    private static int readInt(ReadableByteChannel ch, ByteBuffer word) throws IOException {
        word.clear();
        while (word.hasRemaining()) {
            if (ch.read(word) < 0) throw new EOFException();
        }
        return word.flip().getInt();
    }

    /** Direct buffers for received frames, kept for reuse once their values are taken; the last given is taken first, still in cache. */
    private static final class Frames {
        private final java.util.concurrent.ConcurrentLinkedDeque<ByteBuffer> free = new java.util.concurrent.ConcurrentLinkedDeque<>();

        ByteBuffer take(int size) {
            for (ByteBuffer b; (b = free.pollFirst()) != null; ) {
                if (b.capacity() >= size) return b.clear().limit(size);
            }
            // An aligned slice starts at the first boundary and ends at the last one: room for both.
            int rounded = (size + ALIGN - 1) / ALIGN * ALIGN;
            return ByteBuffer.allocateDirect(rounded + ALIGN).alignedSlice(ALIGN).limit(size);
        }

        void give(ByteBuffer b) {
            if (free.size() < 2 * QUEUE) free.offerFirst(b);
        }
    }

    private void deliver(ByteBuffer frame, String peer) {
        int pad = frame.getInt();
        if (pad < 0 || pad >= ALIGN || pad > frame.remaining()) {
            LOG.warn("a message from {} has {} bytes of padding: dropped", peer, pad);
            return;
        }
        frame.position(frame.position() + pad);
        String target, manifest;
        try {
            target = text(frame);
            manifest = text(frame);
        } catch (IllegalArgumentException e) {
            LOG.warn("a message from {} is not one of Relay's frames, dropped: {}", peer, e.getMessage());
            return;
        }
        Object message;
        try {
            message = serializer.fromBinary(frame, manifest);
        } catch (IOException | RuntimeException e) {
            LOG.warn("a message from {} for {} could not be read, dropped: {}", peer, target, e.getMessage());
            return;
        }
        ActorRef<Object> to = targets.computeIfAbsent(target, refs::resolveActorRef);
        to.tell(message);
    }

    private static String text(ByteBuffer b) {
        int n = b.getInt();
        if (n < 0 || n > b.remaining()) throw new IllegalArgumentException("a string of " + n + " bytes in " + b.remaining());
        byte[] s = new byte[n];
        b.get(s);
        return new String(s, StandardCharsets.UTF_8);
    }

    /** Stops accepting, closes every connection in and out, and frees what was still queued. */
    @Override
    public void close() {
        closed = true;
        closeQuietly(server);
        accepted.forEach(TensorChannel::closeQuietly);
        writers.values().forEach(w -> w.thread.interrupt());
    }

    private static void closeQuietly(java.io.Closeable c) {
        try {
            c.close();
        } catch (IOException ignored) {
            // Closing is all that is left to do with it.
        }
    }
}
