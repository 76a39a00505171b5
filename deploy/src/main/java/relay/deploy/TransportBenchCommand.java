package relay.deploy;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import relay.actors.bench.TransportBench;
import relay.transport.TlsContext;

@Command(name = "transport", mixinStandardHelpOptions = true,
        description = "Ways to move the pipeline's tensor messages between two JVMs on loopback, side by side in one run: Relay's tensor "
                + "channel, Pekko Streams TCP carrying the same messages, Artery over TCP and over Aeron UDP (and the channel and Streams "
                + "over TLS), against a plain socket pair (heap arrays) and a direct-buffer socket pair (the strongest the loopback allows): "
                + "throughput and round-trip latency per message size.")
final class TransportBenchCommand implements Callable<Integer> {
    @Option(names = "--sizes", split = ",", description = "message sizes, e.g. 1MiB,4MiB (default ${DEFAULT-VALUE})")
    List<String> sizes = List.of("64KiB", "256KiB", "1MiB", "4MiB", "16MiB", "64MiB");

    @Option(names = "--messages", description = "timed messages per size, path and repeat (default: as many as make 256 MiB, at least 32)")
    Integer messages;

    @Option(names = "--window", description = "messages in flight (default ${DEFAULT-VALUE})")
    int window = 4;

    @Option(names = "--paths", split = ",", description = "the paths to measure beside the direct socket pair: plain, channel, streams, artery, "
            + "aeron, channel-tls, streams-tls (the TLS ones with a throwaway key made by the JDK's keytool; default ${DEFAULT-VALUE})")
    List<String> paths = List.of("plain", "channel", "streams", "artery", "aeron");

    @Option(names = "--serve", hidden = true, description = "be the receiving JVM (the benchmark starts it)")
    boolean serve;

    @Option(names = "--tls-store", hidden = true, description = "the receiving JVM's key and trust store")
    Path tlsStore;

    @Mixin
    JsonOption json;

    /** "4MiB", "512KiB", "100" (bytes): a whole number of KiB. */
    static long bytes(String size) {
        String s = size.trim();
        long unit = s.endsWith("GiB") ? 1L << 30 : s.endsWith("MiB") ? 1L << 20 : s.endsWith("KiB") ? 1L << 10 : 1;
        long n;
        try {
            n = Long.parseLong(unit == 1 ? s : s.substring(0, s.length() - 3)) * unit;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--sizes must be sizes like 4MiB, 512KiB, not " + size, e);
        }
        Inputs.require(n >= 1024 && n % 1024 == 0 && n <= (1L << 30), "--sizes", "whole KiB from 1KiB to 1GiB", size);
        return n;
    }

    /** The direct socket pair and the paths named, in the benchmark's order. */
    static Set<TransportBench.Kind> kinds(List<String> names) {
        Set<TransportBench.Kind> kinds = EnumSet.of(TransportBench.Kind.DIRECT);
        for (String n : names) {
            TransportBench.Kind k = Arrays.stream(TransportBench.Kind.values()).filter(x -> x.key().equals(n.trim())).findFirst().orElse(null);
            Inputs.require(k != null, "--paths", "names from plain, channel, streams, artery, aeron, channel-tls, streams-tls", n);
            kinds.add(k);
        }
        return kinds;
    }

    private static final String STORE_PASSWORD = "relay-bench";

    @Override
    public Integer call() throws Exception {
        List<Long> b = sizes.stream().map(TransportBenchCommand::bytes).toList();
        long frame = b.stream().mapToLong(Long::longValue).max().orElse(1L << 20) + (1 << 20);
        Set<TransportBench.Kind> kinds = kinds(paths);
        if (serve) {
            TransportBench.serve(kinds, frame, tlsStore == null ? null : context(tlsStore), System.out, System.in);
            return 0;
        }
        Inputs.require(messages == null || messages >= 1, "--messages", "≥ 1", messages);
        Inputs.require(window >= 1, "--window", "≥ 1", window);
        boolean tls = kinds.contains(TransportBench.Kind.CHANNEL_TLS) || kinds.contains(TransportBench.Kind.STREAMS_TLS);
        Path dir = tls ? Files.createTempDirectory("relay-bench-tls") : null;
        Path store = tls ? keyStore(dir) : null;
        List<String> args = new ArrayList<>(List.of("bench", "transport", "--serve", "--sizes", String.join(",", sizes), "--paths", String.join(",", paths)));
        if (store != null) args.addAll(List.of("--tls-store", store.toString()));
        Process peer = new ProcessBuilder(RelayJvm.command(args)).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        try {
            BufferedReader lines = new BufferedReader(new InputStreamReader(peer.getInputStream(), StandardCharsets.UTF_8));
            // The JVM may say things of its own on standard output first (a flight recording starting, say).
            String ready = lines.readLine();
            while (ready != null && !ready.startsWith(TransportBench.READY)) ready = lines.readLine();
            Map<TransportBench.Kind, String> at = TransportBench.addresses(String.valueOf(ready));
            System.out.printf("peer JVM %d ready; %s messages per size, path and repeat, %d in flight%n", peer.pid(),
                    messages == null ? "256 MiB of" : String.valueOf(messages), window);
            List<TransportBench.Result> results = TransportBench.measure(at, b, messages == null ? TransportBench.AUTO : messages, window, frame,
                    store == null ? null : context(store), System.out);
            print(results);
            List<Map<String, Object>> out = new ArrayList<>();
            for (TransportBench.Result r : results) {
                TransportBench.Measured direct = r.of(TransportBench.Kind.DIRECT);
                Map<String, Object> paths = new LinkedHashMap<>();
                for (TransportBench.Measured m : r.paths()) {
                    Map<String, Object> o = new LinkedHashMap<>();
                    o.put("messages", m.messages());
                    o.put("mib_per_s", m.mibPerSecond());
                    o.put("of_direct", m.mibPerSecond() / direct.mibPerSecond());
                    o.put("latency_ms", m.latencyMs());
                    o.put("latency_of_direct", m.latencyMs() / direct.latencyMs());
                    if (m.failure() != null) o.put("failure", m.failure());
                    paths.put(m.path(), o);
                }
                out.add(Map.of("bytes", r.bytes(), "paths", paths));
            }
            json.write(Map.of("sizes", out, "window", window));
            return 0;
        } finally {
            peer.getOutputStream().close();
            if (!peer.waitFor(60, TimeUnit.SECONDS)) peer.destroyForcibly();
            if (dir != null) {
                try (var files = Files.list(dir)) {
                    for (Path f : files.toList()) Files.delete(f);
                }
                Files.delete(dir);
            }
        }
    }

    /** Two tables, one row per size: each path's MiB/s, then its round trip, each with its share of the direct socket pair's. */
    private void print(List<TransportBench.Result> results) {
        List<String> names = results.get(0).paths().stream().map(TransportBench.Measured::path).toList();
        List<String> head = new ArrayList<>(List.of("MiB/s (× direct)"));
        head.addAll(names);
        Table rate = new Table(head.toArray(String[]::new));
        head.set(0, "round trip ms (× direct)");
        Table latency = new Table(head.toArray(String[]::new));
        List<String> failures = new ArrayList<>();
        for (TransportBench.Result r : results) {
            TransportBench.Measured direct = r.of(TransportBench.Kind.DIRECT);
            String size = sizes.get(results.indexOf(r));
            List<String> rateRow = new ArrayList<>(List.of(size)), latencyRow = new ArrayList<>(List.of(size));
            for (TransportBench.Measured m : r.paths()) {
                rateRow.add(cell(m.mibPerSecond(), "%.0f", m.mibPerSecond() / direct.mibPerSecond()));
                latencyRow.add(cell(m.latencyMs(), "%.2f", m.latencyMs() / direct.latencyMs()));
                if (m.failure() != null) failures.add(size + " " + m.path() + ": " + m.failure());
            }
            rate.row(rateRow.toArray());
            latency.row(latencyRow.toArray());
        }
        rate.print(System.out);
        System.out.println();
        latency.print(System.out);
        failures.forEach(f -> System.out.println("not measured: " + f));
    }

    private static String cell(double v, String format, double ofDirect) {
        return Double.isNaN(v) ? "—" : String.format(Locale.ROOT, format + " (%.2f)", v, ofDirect);
    }

    /** A throwaway key pair and certificate, trusted by both JVMs: its own trust store. */
    private static Path keyStore(Path dir) throws Exception {
        Path store = dir.resolve("bench.p12");
        Process keytool = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "keytool").toString(), "-genkeypair", "-alias",
                "bench", "-keyalg", "EC", "-groupname", "secp256r1", "-dname", "CN=relay-bench", "-validity", "1", "-storetype", "PKCS12",
                "-keystore", store.toString(), "-storepass", STORE_PASSWORD).redirectErrorStream(true).start();
        String said = new String(keytool.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (keytool.waitFor() != 0) throw new IllegalStateException("keytool could not make the benchmark's key: " + said);
        return store;
    }

    private static SSLContext context(Path store) throws Exception {
        return TlsContext.of(store.toString(), STORE_PASSWORD, store.toString(), STORE_PASSWORD);
    }
}
