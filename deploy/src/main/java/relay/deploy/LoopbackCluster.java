package relay.deploy;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import relay.actors.ClusterSettings;
import relay.actors.Nodes;

/** What starting a cluster on this machine's loopback takes: a free port for the coordinator, and its workers' command lines. */
public final class LoopbackCluster {
    private LoopbackCluster() {}

    public static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    /**
     * The command line of worker {@code index} of {@code workers}, joining the coordinator at this port; of the
     * {@code settings} (key=value), the cluster's own (TLS, sizes, timeouts) are every node's, the port is the
     * coordinator's alone. The workers share this machine's cores: each JVM sees its share as its cores, so that
     * threads-per-device's auto splits the share, not the machine, among the worker's devices.
     */
    static List<String> worker(int port, int index, int workers, List<String> settings) {
        List<String> args = new ArrayList<>(List.of("node", "--join", "127.0.0.1:" + port, "--index", String.valueOf(index)));
        settings.stream().filter(a -> a.startsWith("relay.cluster.") && !a.startsWith("relay.cluster.port=")).forEach(args::add);
        int share = relay.actors.PipelineConfig.Execution.evenShare(Runtime.getRuntime().availableProcessors(), workers);
        return RelayJvm.command(List.of("-XX:ActiveProcessorCount=" + share), args);
    }

    /** The cluster's nodes: this JVM as coordinator and worker JVMs of this machine, started when first needed, all ended on close. */
    static final class Workers implements AutoCloseable {
        private final int nodes;
        private final List<Process> workers = new ArrayList<>();
        private Nodes coordinator;

        Workers(int nodes) {
            this.nodes = nodes;
        }

        Nodes start() {
            try {
                int port = LoopbackCluster.freePort();
                for (int i = 1; i < nodes; i++) {
                    workers.add(new ProcessBuilder(LoopbackCluster.worker(port, i, nodes - 1, List.of()))
                            .redirectOutput(ProcessBuilder.Redirect.DISCARD).redirectError(ProcessBuilder.Redirect.INHERIT).start());
                }
                Config c = ConfigFactory.parseMap(Map.of("relay.cluster.port", port)).withFallback(ConfigFactory.load());
                System.out.printf("the pipeline again on %d JVMs (coordinator here, %d workers on 127.0.0.1:%d)...%n", nodes, nodes - 1, port);
                coordinator = Nodes.coordinator(ClusterSettings.from(c), nodes, ConfigFactory.empty(), System.out::println);
                return coordinator;
            } catch (IOException e) {
                throw new UncheckedIOException("could not start the cluster's workers: " + e.getMessage(), e);
            }
        }

        @Override
        public void close() throws InterruptedException {
            if (coordinator != null) coordinator.close();
            // The workers end once the coordinator has left; one that does not is stopped.
            for (Process p : workers) {
                if (!p.waitFor(60, TimeUnit.SECONDS)) p.destroyForcibly();
            }
        }
    }
}
