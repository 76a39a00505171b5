package relay.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import relay.stages.check.SelfTest;

/** The command line end to end, in process: exit codes, JSON keys, clear errors. */
class RelayCommandTest {
    @TempDir
    Path dir;


    @Test
    void selftestWritesOneEntryPerCheck() throws Exception {
        Path json = dir.resolve("out/selftest.json");
        assertEquals(0, Cli.run(new StringWriter(), "selftest", "--threads", "1", "--json", json.toString()));
        JsonArray a = JsonParser.parseString(Files.readString(json)).getAsJsonArray();
        assertEquals(SelfTest.names().size(), a.size());
        for (var e : a) {
            JsonObject o = e.getAsJsonObject();
            assertTrue(o.get("pass").getAsBoolean(), o.toString());
            assertTrue(o.get("max_rel_err").getAsDouble() >= 0);
        }
    }

    @Test
    void blockBenchReportsMfuAgainstItsOwnPeak() throws Exception {
        Path json = dir.resolve("block.json");
        assertEquals(0, Cli.run(new StringWriter(), "bench", "block", "--model", "llama-tiny", "--batch", "1", "--seq", "32",
                "--iterations", "2", "--threads", "1", "--json", json.toString()));
        JsonObject o = JsonParser.parseString(Files.readString(json)).getAsJsonObject();
        double peak = o.get("sgemm_peak_gflops").getAsDouble(), achieved = o.get("achieved_gflops").getAsDouble();
        assertTrue(peak > 0 && achieved > 0);
        assertEquals(achieved / o.get("sgemm_peak_up_front_gflops").getAsDouble(), o.get("mfu_up_front").getAsDouble(), 1e-9);
        // mfu is the median step's rate over the best sgemm window measured between the steps.
        double best = 0;
        for (var p : o.getAsJsonArray("sgemm_peak_after_step_gflops")) best = Math.max(best, p.getAsDouble());
        assertEquals(best, peak, 1e-9);
        assertEquals(achieved / peak, o.get("mfu").getAsDouble(), 1e-9);
        assertEquals(1, o.get("threads").getAsInt());
        assertTrue(o.getAsJsonObject("peak_bytes").get("activations").getAsLong() > 0);
    }

    @Test
    void memoryBenchWritesPeaksPerCategory() throws Exception {
        Path json = dir.resolve("mem.json");
        assertEquals(0, Cli.run(new StringWriter(), "bench", "memory", "--model", "llama-tiny", "--batch", "1", "--seq", "16",
                "--optimizer", "lomo", "--steps", "2", "--threads", "1", "--json", json.toString()));
        JsonObject o = JsonParser.parseString(Files.readString(json)).getAsJsonObject();
        JsonObject peaks = o.getAsJsonObject("peak_bytes");
        for (String k : new String[] {"parameters", "gradients", "optimizer_state", "activations", "communication", "workspace", "total"}) {
            assertTrue(peaks.has(k), k);
        }
        assertEquals(relay.stages.model.ModelConfig.named("llama-tiny").parameters() * 4, peaks.get("parameters").getAsLong());
        assertEquals(0, peaks.get("optimizer_state").getAsLong(), "LOMO keeps no state");
        assertEquals(o.get("largest_parameter_bytes").getAsLong(), peaks.get("gradients").getAsLong(),
                "LOMO holds one gradient at a time");
        assertTrue(o.get("tokens_per_s").getAsDouble() > 0);
    }

    @Test
    void convergeBenchWritesOneCurvePerOptimizer() throws Exception {
        Path json = dir.resolve("conv.json");
        assertEquals(0, Cli.run(new StringWriter(), "bench", "converge", "--steps", "3", "--batch", "1", "--seq", "16",
                "--optimizers", "adamw,lomo", "--threads", "1", "--json", json.toString()));
        JsonObject o = JsonParser.parseString(Files.readString(json)).getAsJsonObject().getAsJsonObject("optimizers");
        assertEquals(2, o.size());
        assertEquals(3, o.getAsJsonObject("lomo").getAsJsonArray("losses").size());
    }

    @Test
    void transportBenchCarriesMessagesOverTlsToAPeerJvmAndCleansUp() throws Exception {
        Path json = dir.resolve("transport.json");
        Path tmp = Path.of(System.getProperty("java.io.tmpdir"));
        java.util.function.Supplier<Long> keyDirs = () -> {
            try (var s = Files.list(tmp)) {
                return s.filter(f -> f.getFileName().toString().startsWith("relay-bench-tls")).count();
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        };
        long before = keyDirs.get();
        StringWriter err = new StringWriter();
        assertEquals(0, Cli.run(err, "bench", "transport", "--sizes", "16KiB", "--messages", "8", "--paths", "channel-tls,streams-tls",
                "--json", json.toString()), err::toString);
        JsonObject size = JsonParser.parseString(Files.readString(json)).getAsJsonObject().getAsJsonArray("sizes").get(0).getAsJsonObject();
        assertEquals(16 << 10, size.get("bytes").getAsLong());
        JsonObject paths = size.getAsJsonObject("paths");
        assertEquals(java.util.Set.of("direct socket pair", "tensor channel, TLS", "Pekko Streams TCP, TLS"), paths.keySet());
        for (String path : paths.keySet()) {
            JsonObject p = paths.getAsJsonObject(path);
            assertTrue(!p.has("failure") && p.get("mib_per_s").getAsDouble() > 0 && p.get("latency_ms").getAsDouble() > 0, path + ": " + p);
            assertEquals(8, p.get("messages").getAsInt(), "the messages asked for, each path: " + path);
        }
        assertEquals(1.0, paths.getAsJsonObject("direct socket pair").get("of_direct").getAsDouble(), 1e-12);
        assertEquals(before, keyDirs.get(), "the throwaway key is deleted");
    }

    @Test
    void unknownOptimizerIsOneClearLine() {
        StringWriter err = new StringWriter();
        assertEquals(2, Cli.run(err, "bench", "memory", "--model", "llama-tiny", "--optimizer", "adamx"));
        assertTrue(err.toString().startsWith("relay: unknown optimizer 'adamx'"), err.toString());
    }

    @Test
    void helpIsAnsweredBeforeOptionsAreChecked() {
        // --threads 0 and a --json that is a directory would each be refused, but help asked for is help given.
        String out = Cli.output(0, "bench", "sgemm", "--threads", "0", "--json", dir.toString(), "--help");
        assertTrue(out.contains("Usage: relay bench sgemm") && !out.contains("must be"), out);
        String refused = Cli.output(2, "bench", "sgemm", "--threads", "0");
        assertTrue(refused.contains("--threads must be ≥ 1, not 0"), refused);
    }

    @Test
    void unknownModelIsOneClearLine() {
        StringWriter err = new StringWriter();
        assertEquals(2, Cli.run(err, "bench", "block", "--model", "no-such-model"));
        assertTrue(err.toString().startsWith("relay: no model named 'no-such-model'"), err.toString());
    }

    @Test
    void malformedConfigNamesTheFileAndField() throws Exception {
        Path cfg = dir.resolve("config.json");
        Files.writeString(cfg, "{\"model_type\": \"llama\", \"hidden_size\": 64}");
        StringWriter err = new StringWriter();
        assertEquals(2, Cli.run(err, "bench", "block", "--model", dir.toString()));
        assertTrue(err.toString().contains(cfg.toString()) && err.toString().contains("missing field"), err.toString());
    }
}
