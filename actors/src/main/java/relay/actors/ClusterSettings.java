package relay.actors;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import java.time.Duration;
import java.util.List;
import relay.transport.TlsContext;

/**
 * How a node takes part in a cluster (the {@code relay.cluster} settings): its own address — loopback unless
 * configured, so that a node is not reachable from other machines by accident — the coordinator's address
 * to join, how long the coordinator waits for the nodes, the largest message a node sends or takes, how
 * long an unreachable node is given before the split-brain resolver downs it, and TLS.
 */
public record ClusterSettings(String host, int port, String join, Duration joinTimeout, long maxMessage, Duration downAfter,
                              Tls tls) {

    /** Artery's TLS transport with a key store (this node's certificate) and a trust store (the certificates it accepts). */
    public record Tls(boolean enabled, String keyStore, String keyStorePassword, String trustStore, String trustStorePassword) {}

    /** Stage actors are grandchildren of the guardian (/user/host-i/stage), coordinators children: their messages take the large-message stream. */
    static final List<String> LARGE_MESSAGE_DESTINATIONS = List.of("/user/*", "/user/*/*");

    public static ClusterSettings from(Config root) {
        Config c = root.getConfig("relay.cluster");
        Config t = c.getConfig("tls");
        ClusterSettings s = new ClusterSettings(c.getString("host"), c.getInt("port"), c.getString("join"),
                c.getDuration("join-timeout"), c.getBytes("max-message"), c.getDuration("down-after"),
                new Tls(t.getBoolean("enabled"), t.getString("key-store"), t.getString("key-store-password"), t.getString("trust-store"),
                        t.getString("trust-store-password")));
        if (s.host().isBlank()) throw new IllegalArgumentException("relay.cluster.host must be this node's address (a host name or IP), not empty");
        if (s.port() < 0 || s.port() > 65535) throw new IllegalArgumentException("relay.cluster.port must be in 0..65535, not " + s.port());
        if (s.maxMessage() < (TensorPart.MESSAGE_FLOATS + (1 << 20)) * 4L) {
            throw new IllegalArgumentException("relay.cluster.max-message must be at least 17 MiB (a part of a dump is 16 MiB), not "
                    + s.maxMessage() + " bytes");
        }
        if (s.tls().enabled() && (s.tls().keyStore().isEmpty() || s.tls().trustStore().isEmpty())) {
            throw new IllegalArgumentException("relay.cluster.tls needs key-store and trust-store when enabled");
        }
        return s;
    }

    /** The TLS context of the tensor channel, from the same stores as Artery's; null when TLS is off. */
    public javax.net.ssl.SSLContext sslContext() {
        if (!tls.enabled()) return null;
        try {
            return TlsContext.of(tls.keyStore(), tls.keyStorePassword(), tls.trustStore(), tls.trustStorePassword());
        } catch (java.io.IOException | java.security.GeneralSecurityException e) {
            throw new IllegalArgumentException("relay.cluster.tls: " + e.getMessage(), e);
        }
    }

    /** This node's address as others reach it. */
    public String address(int boundPort) {
        return host + ":" + boundPort;
    }

    /**
     * The actor system's configuration for a node of this role: Artery over TCP (or TLS), large messages on
     * their own stream with a frame as large as {@link #maxMessage}, the coordinator's node as seed, and the
     * split-brain resolver keeping the side with the coordinator.
     */
    Config pekko(String role) {
        String seed = "pekko://relay@" + (join.isEmpty() ? host + ":" + port : join);
        Config c = ConfigFactory.empty()
                .withValue("pekko.actor.provider", ConfigValueFactory.fromAnyRef("cluster"))
                .withValue("pekko.remote.artery.transport", ConfigValueFactory.fromAnyRef(tls.enabled() ? "tls-tcp" : "tcp"))
                .withValue("pekko.remote.artery.canonical.hostname", ConfigValueFactory.fromAnyRef(host))
                .withValue("pekko.remote.artery.canonical.port", ConfigValueFactory.fromAnyRef(port))
                .withValue("pekko.remote.artery.large-message-destinations", ConfigValueFactory.fromIterable(LARGE_MESSAGE_DESTINATIONS))
                .withValue("pekko.remote.artery.advanced.maximum-large-frame-size", ConfigValueFactory.fromAnyRef(maxMessage))
                .withValue("pekko.cluster.roles", ConfigValueFactory.fromIterable(List.of(role)))
                .withValue("pekko.cluster.seed-nodes", ConfigValueFactory.fromIterable(List.of(seed)))
                .withValue("pekko.cluster.split-brain-resolver.stable-after", ConfigValueFactory.fromAnyRef(downAfter.toMillis() + "ms"));
        if (tls.enabled()) {
            String p = "pekko.remote.artery.ssl.config-ssl-engine.";
            c = c.withValue(p + "key-store", ConfigValueFactory.fromAnyRef(tls.keyStore()))
                    .withValue(p + "key-store-password", ConfigValueFactory.fromAnyRef(tls.keyStorePassword()))
                    .withValue(p + "key-password", ConfigValueFactory.fromAnyRef(tls.keyStorePassword()))
                    .withValue(p + "trust-store", ConfigValueFactory.fromAnyRef(tls.trustStore()))
                    .withValue(p + "trust-store-password", ConfigValueFactory.fromAnyRef(tls.trustStorePassword()));
        }
        return c;
    }
}
