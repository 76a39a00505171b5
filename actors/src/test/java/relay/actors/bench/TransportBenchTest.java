package relay.actors.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Every path of {@code relay bench transport} carries its messages to a peer that serves them and back (the
 * sender counts the peer's acknowledgements, so a path that loses or garbles a message fails here), and a size
 * a path cannot carry is reported as such rather than timed. Both ends run in this JVM, on loopback.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class TransportBenchTest {
    @Test
    void everyPathCarriesItsMessagesAndIsTimed() throws Exception {
        Set<TransportBench.Kind> kinds = EnumSet.of(TransportBench.Kind.DIRECT, TransportBench.Kind.PLAIN, TransportBench.Kind.CHANNEL,
                TransportBench.Kind.STREAMS, TransportBench.Kind.ARTERY);
        long max = 2L << 20;
        ByteArrayOutputStream said = new ByteArrayOutputStream();
        PipedOutputStream stop = new PipedOutputStream();
        PipedInputStream stopped = new PipedInputStream(stop);
        CompletableFuture<Void> peer = CompletableFuture.runAsync(() -> {
            try {
                TransportBench.serve(kinds, max, null, new PrintStream(said, true, StandardCharsets.UTF_8), stopped);
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        try {
            String ready = "";
            for (int i = 0; i < 600 && !ready.contains("\n"); i++) {
                Thread.sleep(50);
                ready = said.toString(StandardCharsets.UTF_8);
            }
            Map<TransportBench.Kind, String> at = TransportBench.addresses(ready.strip());
            assertEquals(kinds, at.keySet(), "the peer serves every path asked for");
            List<TransportBench.Result> results = TransportBench.measure(at, List.of(16L << 10, 4L << 20), 8, 2, max, null,
                    new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8));
            TransportBench.Result small = results.get(0), large = results.get(1);
            for (TransportBench.Measured m : small.paths()) {
                assertNull(m.failure(), m.path() + " carried 16 KiB messages");
                assertTrue(m.mibPerSecond() > 0 && Double.isFinite(m.mibPerSecond()), m.path() + " throughput " + m.mibPerSecond());
                assertTrue(m.latencyMs() > 0 && Double.isFinite(m.latencyMs()), m.path() + " latency " + m.latencyMs());
            }
            TransportBench.Measured tooLarge = large.of(TransportBench.Kind.CHANNEL);
            assertTrue(Double.isNaN(tooLarge.mibPerSecond()) && tooLarge.failure().startsWith("carries at most"),
                    "a 4 MiB message over a 2 MiB limit is not timed: " + tooLarge);
            assertTrue(large.of(TransportBench.Kind.DIRECT).mibPerSecond() > 0, "the socket pair has no such limit");
        } finally {
            stop.close();
            peer.get(60, TimeUnit.SECONDS);
        }
    }
}
