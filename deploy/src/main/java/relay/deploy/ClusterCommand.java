package relay.deploy;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Unmatched;
import picocli.CommandLine.Model.CommandSpec;

@Command(name = "cluster", mixinStandardHelpOptions = true, subcommands = ClusterCommand.Local.class,
        description = "Runs training on a cluster of relay JVMs. For several machines see deploy/bin/relay-ssh and deploy/slurm/relay.sbatch.")
final class ClusterCommand implements Runnable {
    @Spec
    CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    @Command(name = "local", mixinStandardHelpOptions = true,
            description = "Trains on N JVMs of this machine, on loopback: node 0 coordinates (relay train nodes=N), nodes 1..N-1 hold the "
                    + "devices, split among them in order. Every other argument is relay train's (with none, the default run). Their "
                    + "output is gathered here, each line marked with its node; all stop on Ctrl-C (after the step and its "
                    + "checkpoint), when the run ends, or when this launcher is killed, and the run's exit code is returned.")
    static final class Local implements Callable<Integer> {
        @Option(names = "--nodes", description = "JVMs, the coordinator's included (default ${DEFAULT-VALUE})")
        int nodes = 3;

        @Unmatched
        List<String> train = new ArrayList<>();

        @Override
        public Integer call() throws Exception {
            Inputs.require(nodes >= 2, "--nodes", "2 or more (a coordinator and at least one worker)", nodes);
            for (String a : train) {
                if (a.startsWith("nodes=")) throw new IllegalArgumentException("'" + a + "': relay cluster local sets nodes from --nodes");
                if (a.startsWith("relay.cluster.join=")) throw new IllegalArgumentException("'" + a + "': the workers join node 0 of this machine");
            }
            int port = port();
            List<String> coordinator = new ArrayList<>(List.of("train"));
            coordinator.addAll(train);
            coordinator.addAll(List.of("nodes=" + nodes, "relay.cluster.port=" + port));
            List<Process> all = new ArrayList<>();
            List<Thread> pumps = new ArrayList<>();
            Runtime.getRuntime().addShutdownHook(new Thread(() -> stopAll(all, pumps), "relay-cluster-stop"));
            synchronized (all) {
                all.add(start(0, RelayJvm.command(coordinator), pumps));
                for (int i = 1; i < nodes; i++) all.add(start(i, LoopbackCluster.worker(port, i, nodes - 1, train), pumps));
            }
            int code = all.get(0).waitFor();
            // The workers end when the coordinator leaves the cluster; one that does not is stopped.
            for (int i = 1; i < all.size(); i++) {
                Process p = all.get(i);
                if (!p.waitFor(60, TimeUnit.SECONDS)) {
                    System.err.printf("[node %d] did not end with the run: stopped%n", i);
                    p.destroyForcibly();
                }
            }
            drain(pumps);
            return code;
        }

        /** The coordinator's port: relay.cluster.port among the train arguments, else a free one. */
        private int port() throws IOException {
            String key = "relay.cluster.port=";
            String given = train.stream().filter(a -> a.startsWith(key)).map(a -> a.substring(key.length())).reduce((a, b) -> b).orElse(null);
            if (given == null) return LoopbackCluster.freePort();
            try {
                int port = Integer.parseInt(given.trim());
                if (port >= 1 && port <= 65535) return port;
            } catch (NumberFormatException notANumber) {
                // Said below.
            }
            throw new IllegalArgumentException("relay.cluster.port: expected a port from 1 to 65535, got '" + given + "'");
        }

        /**
         * A node's JVM, its standard input a pipe from here that stays open while this launcher lives: when the launcher
         * ends, however it ends, the node sees the pipe close and stops too ({@link Relay#PARENT_PIPE}).
         */
        private static Process start(int node, List<String> command, List<Thread> pumps) throws IOException {
            ProcessBuilder b = new ProcessBuilder(command).redirectInput(ProcessBuilder.Redirect.PIPE);
            b.environment().put(Relay.PARENT_PIPE, "1");
            Process p = b.start();
            pumps.add(pump(p.getInputStream(), System.out, node));
            pumps.add(pump(p.getErrorStream(), System.err, node));
            return p;
        }

        /** Waits until every node's last line has been copied here (its output ends when it does). */
        private static void drain(List<Thread> pumps) {
            for (Thread t : pumps) {
                try {
                    t.join(TimeUnit.SECONDS.toMillis(10));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }

        /** Copies a node's output here line by line, each marked with the node. */
        private static Thread pump(InputStream from, PrintStream to, int node) {
            Thread t = new Thread(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(from, StandardCharsets.UTF_8))) {
                    for (String line; (line = r.readLine()) != null; ) {
                        synchronized (System.out) {
                            to.println("[node " + node + "] " + line);
                        }
                    }
                } catch (IOException ended) {
                    // The node is gone.
                }
            }, "relay-cluster-log-" + node);
            t.setDaemon(true);
            t.start();
            return t;
        }

        /**
         * On Ctrl-C or SIGTERM here: every node is asked to stop (SIGTERM); the coordinator finishes its step and
         * writes a checkpoint, the workers wait until it has, then all are gone — and what they said last (the command
         * to go on with) is printed here before this JVM ends.
         */
        private static void stopAll(List<Process> all, List<Thread> pumps) {
            List<Process> live;
            synchronized (all) {
                live = all.stream().filter(Process::isAlive).toList();
            }
            // SIGTERM through the process handle: Process.destroy would also close the pipes this launcher reads the
            // nodes' output from, and their last words (the checkpoint, the command to go on) would be lost.
            live.forEach(p -> p.toHandle().destroy());
            for (Process p : live) {
                try {
                    if (!p.waitFor(NodeCommand.STOP_GRACE.toSeconds(), TimeUnit.SECONDS)) p.destroyForcibly();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    p.destroyForcibly();
                }
            }
            List<Thread> output;
            synchronized (all) {
                output = List.copyOf(pumps);
            }
            drain(output);
        }
    }
}
