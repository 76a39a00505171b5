package relay.deploy;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.util.ArrayList;
import java.util.List;

/** What starting a cluster on this machine's loopback takes: a free port for the coordinator, and its workers' command lines. */
public final class LoopbackCluster {
    private LoopbackCluster() {}

    public static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    /**
     * The relay arguments of worker {@code index} joining the coordinator at this port; of the {@code settings}
     * (key=value), the cluster's own (TLS, sizes, timeouts) are every node's, the port is the coordinator's alone.
     */
    static List<String> worker(int port, int index, List<String> settings) {
        List<String> args = new ArrayList<>(List.of("node", "--join", "127.0.0.1:" + port, "--index", String.valueOf(index)));
        settings.stream().filter(a -> a.startsWith("relay.cluster.") && !a.startsWith("relay.cluster.port=")).forEach(args::add);
        return args;
    }
}
