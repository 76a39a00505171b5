package relay.deploy;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import relay.actors.ClusterSettings;
import relay.actors.Nodes;
import relay.actors.WorkerNode;
import relay.deploy.train.KnownSettings;

@Command(name = "node", mixinStandardHelpOptions = true,
        description = "A worker node of a run that spans several JVMs: it joins the coordinator (a relay train with nodes > 1), offers "
                + "its devices for the stages placed on it, and ends when the run does. The launchers (relay cluster local, "
                + "deploy/bin/relay-ssh, deploy/slurm/relay.sbatch) start these for you.")
final class NodeCommand implements Callable<Integer> {
    /** As long as the coordinator gives its last step and checkpoint after a stop signal, and a little more. */
    static final java.time.Duration STOP_GRACE = java.time.Duration.ofSeconds(330);

    @Option(names = "--join", required = true, description = "the coordinator's host:port")
    String join;

    @Option(names = "--index", required = true, description = "this node's number, 1 to nodes − 1 (the coordinator is 0): it says which "
            + "devices it holds")
    int index;

    @Option(names = "--host", description = "this node's address for the others (default: relay.cluster.host, loopback)")
    String host;

    @Option(names = "--port", description = "the port to listen on (default: relay.cluster.port, 0: any free one)")
    Integer port;

    @Parameters(description = "relay.cluster settings as key=value, e.g. relay.cluster.tls.enabled=on")
    List<String> overrides = new ArrayList<>();

    @Override
    public Integer call() throws Exception {
        Inputs.require(index >= 1, "--index", "1 or more (0 is the coordinator's)", index);
        Inputs.require(join.matches("[^:\\s]+:\\d{1,5}") && Integer.parseInt(join.substring(join.lastIndexOf(':') + 1)) <= 65535, "--join",
                "host:port with a port in 0..65535", join);
        Config c = ConfigFactory.load();
        for (String o : overrides) {
            int eq = o.indexOf('=');
            if (eq <= 0 || !o.startsWith("relay.cluster.")) throw new IllegalArgumentException("'" + o + "' is not relay.cluster.key=value");
            try {
                c = KnownSettings.argument(o.substring(0, eq), o.substring(eq + 1), o).withFallback(c);
            } catch (ConfigException e) {
                throw new IllegalArgumentException("'" + o + "': " + e.getMessage(), e);
            }
        }
        c = c.withValue("relay.cluster.join", ConfigValueFactory.fromAnyRef(join));
        if (host != null) c = c.withValue("relay.cluster.host", ConfigValueFactory.fromAnyRef(host));
        if (port != null) c = c.withValue("relay.cluster.port", ConfigValueFactory.fromAnyRef(port));
        ClusterSettings settings;
        try {
            settings = ClusterSettings.from(c.resolve());
        } catch (ConfigException e) {
            throw new IllegalArgumentException("configuration: " + e.getMessage(), e);
        }
        WorkerNode node = Nodes.worker(settings, index, ConfigFactory.empty());
        System.out.printf("node %d at %s joining the coordinator at %s%n", index, node.address(), join);
        // SIGTERM or Ctrl-C reaches every node of a job at once: this one stays until the coordinator has
        // finished its step and checkpoint with it and left, within the same grace as the coordinator's.
        // A node still joining has no step to finish: it leaves at once.
        Thread stay = new Thread(() -> {
            if (node.joined()) {
                node.awaitEnd(STOP_GRACE);
            } else {
                System.err.println("relay: node " + index + ": stopped before it joined the coordinator at " + join);
                node.close();
            }
        }, "relay-node-stop");
        Runtime.getRuntime().addShutdownHook(stay);
        node.awaitEnd(null);
        try {
            Runtime.getRuntime().removeShutdownHook(stay);
        } catch (IllegalStateException shuttingDown) {
            // A signal ended the node, and its hook said how: nothing more to say, the process ends with the signal's code.
            return 143;
        }
        String why = node.endedBecause();
        if (why != null) {
            // A refused node's command line is at fault, not the run: exit 2, as for other bad input.
            System.err.println("relay: node " + index + ": " + why + (node.refused() ? "; give it another --index" : ""));
            return node.refused() ? 2 : 1;
        }
        System.out.printf("node %d: the run ended%n", index);
        return 0;
    }
}
