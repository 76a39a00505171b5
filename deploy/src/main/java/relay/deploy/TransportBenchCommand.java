package relay.deploy;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import relay.actors.bench.TransportBench;

@Command(name = "transport", mixinStandardHelpOptions = true,
        description = "Relay's tensor path between two JVMs on loopback (the tensor channel beside Pekko's remoting, Relay's codecs, "
                + "values written from device memory and taken where they land) against a plain TCP socket pair between the same JVMs: "
                + "throughput and round-trip latency per message size.")
final class TransportBenchCommand implements Callable<Integer> {
    @Option(names = "--sizes", split = ",", description = "message sizes, e.g. 1MiB,4MiB (default ${DEFAULT-VALUE})")
    List<String> sizes = List.of("1MiB", "4MiB", "16MiB", "64MiB");

    @Option(names = "--messages", description = "timed messages per size, path and repeat (default ${DEFAULT-VALUE})")
    int messages = 32;

    @Option(names = "--window", description = "messages in flight (default ${DEFAULT-VALUE})")
    int window = 4;

    @Option(names = "--serve", hidden = true, description = "be the receiving JVM (the benchmark starts it)")
    boolean serve;

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

    @Override
    public Integer call() throws Exception {
        List<Long> b = sizes.stream().map(TransportBenchCommand::bytes).toList();
        long frame = b.stream().mapToLong(Long::longValue).max().orElse(1L << 20) + (1 << 20);
        if (serve) {
            TransportBench.serve(frame, System.out, System.in);
            return 0;
        }
        Inputs.require(messages >= 1, "--messages", "≥ 1", messages);
        Inputs.require(window >= 1, "--window", "≥ 1", window);
        List<String> cmd = RelayJvm.command(List.of("bench", "transport", "--serve", "--sizes", String.join(",", sizes)));
        Process peer = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        try {
            BufferedReader lines = new BufferedReader(new InputStreamReader(peer.getInputStream(), StandardCharsets.UTF_8));
            String ready = lines.readLine();
            if (ready == null || !ready.startsWith("relay-transport-peer ")) throw new IllegalStateException("the peer JVM did not start: " + ready);
            String[] parts = ready.split(" ");
            System.out.printf("peer JVM %d ready; %d messages per size and path, %d in flight%n", peer.pid(), messages, window);
            List<TransportBench.Result> results = TransportBench.measure(parts[1], parts[2], Integer.parseInt(parts[3]), b, messages, window,
                    Math.max(3, Math.min(11, messages / 2)), frame);
            Table t = new Table("size", "relay MiB/s", "raw TCP MiB/s", "ratio", "relay latency ms", "raw TCP latency ms");
            List<Map<String, Object>> out = new ArrayList<>();
            for (TransportBench.Result r : results) {
                t.row(sizes.get(results.indexOf(r)), f(r.relayMibPerSecond()), f(r.rawMibPerSecond()), String.format(Locale.ROOT, "%.2f", r.ratio()),
                        f(r.relayLatencyMs()), f(r.rawLatencyMs()));
                Map<String, Object> o = new LinkedHashMap<>();
                o.put("bytes", r.bytes());
                o.put("relay_mib_per_s", r.relayMibPerSecond());
                o.put("raw_tcp_mib_per_s", r.rawMibPerSecond());
                o.put("ratio", r.ratio());
                o.put("relay_latency_ms", r.relayLatencyMs());
                o.put("raw_tcp_latency_ms", r.rawLatencyMs());
                out.add(o);
            }
            t.print(System.out);
            json.write(Map.of("sizes", out, "messages", messages, "window", window));
            return 0;
        } finally {
            peer.getOutputStream().close();
            if (!peer.waitFor(30, TimeUnit.SECONDS)) peer.destroyForcibly();
        }
    }

    private static String f(double v) {
        return String.format(Locale.ROOT, "%.1f", v);
    }
}
