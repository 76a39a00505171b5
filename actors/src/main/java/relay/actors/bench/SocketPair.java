package relay.actors.bench;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;

/**
 * The baselines of {@link TransportBench}: one blocking TCP connection between the two JVMs, a length-prefixed
 * message each way and one byte back to acknowledge it, no framework in between. The <em>plain</em> pair sends
 * from and reads into heap arrays, as a socket's streams do (each write and read copies through a native
 * buffer of the JDK); the <em>direct</em> pair sends from and reads into direct buffers, so the bytes go from
 * memory to the kernel and back as they would from C: the strongest the loopback allows.
 */
final class SocketPair implements TransportBench.Path {
    private final String name;
    private final boolean direct;
    private final SocketChannel socket;
    private final ByteBuffer ack = ByteBuffer.allocateDirect(1);
    private ByteBuffer message = ByteBuffer.allocate(0);
    private final ByteBuffer length = ByteBuffer.allocateDirect(4);

    private SocketPair(String name, boolean direct, SocketChannel socket) {
        this.name = name;
        this.direct = direct;
        this.socket = socket;
    }

    /** The sending end, connected to a {@link #serve}d port. */
    static SocketPair connect(String name, boolean direct, int port) throws IOException {
        SocketChannel s = SocketChannel.open(new InetSocketAddress(InetAddress.getLoopbackAddress(), port));
        s.socket().setTcpNoDelay(true);
        return new SocketPair(name, direct, s);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public long limit() {
        return Integer.MAX_VALUE;
    }

    @Override
    public double seconds(long bytes, int messages, int window) throws IOException {
        int n = Math.toIntExact(bytes);
        if (message.capacity() != n) message = direct ? ByteBuffer.allocateDirect(n) : ByteBuffer.allocate(n);
        long start = System.nanoTime();
        int sent = 0;
        for (; sent < Math.min(window, messages); sent++) send(n);
        for (int acked = 0; acked < messages; acked++) {
            ack.clear();
            if (socket.read(ack) < 0) throw new IOException("the socket peer closed");
            if (sent < messages) {
                send(n);
                sent++;
            }
        }
        return (System.nanoTime() - start) / 1e9;
    }

    /** The length, then the message, in one gathering write: one system call as a C sender would make. */
    private void send(int n) throws IOException {
        length.clear().putInt(n).flip();
        message.clear();
        ByteBuffer[] frame = {length, message};
        long left = 4L + n;
        while (left > 0) left -= socket.write(frame);
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }

    /** The receiving end: a thread that reads each message whole (into heap or direct memory) and acknowledges it. */
    static int serve(boolean direct) throws IOException {
        ServerSocketChannel server = ServerSocketChannel.open();
        server.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
        Thread t = new Thread(() -> echo(server, direct), direct ? "direct-sink" : "plain-sink");
        t.setDaemon(true);
        t.start();
        return server.socket().getLocalPort();
    }

    private static void echo(ServerSocketChannel server, boolean direct) {
        while (true) {
            try (SocketChannel s = server.accept()) {
                s.socket().setTcpNoDelay(true);
                ByteBuffer length = ByteBuffer.allocateDirect(4), ack = ByteBuffer.allocateDirect(1), buf = ByteBuffer.allocate(0);
                while (true) {
                    length.clear();
                    fill(s, length);
                    int n = length.flip().getInt();
                    if (buf.capacity() < n) buf = direct ? ByteBuffer.allocateDirect(n) : ByteBuffer.allocate(n);
                    buf.clear().limit(n);
                    fill(s, buf);
                    ack.clear().put((byte) 1).flip();
                    while (ack.hasRemaining()) s.write(ack);
                }
            } catch (IOException closed) {
                if (!server.isOpen()) return;
            }
        }
    }

    private static void fill(SocketChannel s, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            if (s.read(b) < 0) throw new java.io.EOFException();
        }
    }
}
