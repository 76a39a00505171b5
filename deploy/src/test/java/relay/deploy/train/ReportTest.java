package relay.deploy.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.WireFormat;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The report's charts, its timeline and the TensorBoard events, checked against what a run wrote. */
class ReportTest {
    @TempDir
    Path dir;

    @Test
    void ticksAreRoundValuesThatEncloseTheData() {
        assertArrayEquals(new double[] {0, 500, 1000, 1500, 2000}, Chart.ticks(1, 1600, 6, true));
        assertArrayEquals(new double[] {3, 4, 5, 6, 7}, Chart.ticks(3.06, 6.28, 5, false));
        assertArrayEquals(new String[] {"2.8", "3.0", "3.2", "3.4"}, Chart.labels(Chart.ticks(2.9, 3.33, 5, false)));
        assertArrayEquals(new double[] {1, 2, 3, 4}, Chart.ticks(1, 4, 6, true), "steps are whole numbers");
        for (double[] range : new double[][] {{0.0003, 0.002}, {12, 47000}, {-1.5, 2.5}, {5.9, 6.3}}) {
            double[] t = Chart.ticks(range[0], range[1], 5, false);
            double step = (t[t.length - 1] - t[0]) / (t.length - 1), mantissa = step / Math.pow(10, Math.floor(Math.log10(step) + 1e-9));
            assertTrue(Math.abs(mantissa - 1) < 1e-6 || Math.abs(mantissa - 2) < 1e-6 || Math.abs(mantissa - 5) < 1e-6, Arrays.toString(t));
            assertTrue(t[0] <= range[0] && t[t.length - 1] >= range[1] && t.length >= 3 && t.length <= 11, Arrays.toString(t));
        }
        assertArrayEquals(new String[] {"0.0e+00", "5.0e-04", "1.0e-03"}, Chart.labels(new double[] {0, 5e-4, 1e-3}));
    }

    @Test
    void theSmoothedLineIsTheTrailingMean() {
        List<double[]> raw = new ArrayList<>();
        for (int s = 1; s <= 40; s++) raw.add(new double[] {s, s % 2 == 0 ? 1 : 3});
        List<double[]> smooth = Report.smoothed("s", new Chart.Series("raw", raw, Chart.Style.FAINT)).points();
        assertEquals(3, smooth.get(0)[1]);
        assertEquals(2, smooth.get(39)[1], 1e-12, "a window of 2 over alternating 3, 1");
    }

    /** A tiny pipeline run: the report has every chart and the timeline, and relay report rebuilds the same page. */
    @Test
    void aRunsReportDrawsEveryChartAndItsTimelineAndCanBeRebuilt() throws Exception {
        Path run = tinyRun();
        String html = Files.readString(run.resolve("report.html"));
        for (String id : List.of("loss", "lr", "memory", "throughput", "timeline")) assertTrue(html.contains("id=\"" + id + "\""), id);
        assertFalse(html.contains("<script") || html.contains("http-equiv=\"refresh\""), "a finished run's page is static");
        assertTrue(html.contains("LISA draw"), "LISA's draws are marked");
        Matcher boxes = Pattern.compile("<title>(\\S+) (forward|backward|update), microbatch (\\d+)").matcher(html);
        int forwards = 0, backwards = 0;
        while (boxes.find()) {
            if (boxes.group(2).equals("forward")) forwards++;
            if (boxes.group(2).equals("backward")) backwards++;
        }
        // llama-tiny has 6 stages; 2 microbatches: each stage forwards both, and all but the head (fused) run backwards.
        assertEquals(6 * 2, forwards, html);
        assertEquals(5 * 2, backwards, html);
        Matcher bubble = Pattern.compile("bubble ([0-9.]+) measured from these spans, ([0-9.]+) in theory").matcher(html);
        assertTrue(bubble.find(), html);
        assertEquals((2 - 1.0) / (2 + 2 - 1), Double.parseDouble(bubble.group(2)), 1e-3);

        Files.delete(run.resolve("report.html"));
        Report.rebuild(run);
        String rebuilt = Files.readString(run.resolve("report.html"));
        for (String id : List.of("loss", "lr", "memory", "throughput", "timeline")) assertTrue(rebuilt.contains("id=\"" + id + "\""), id);
        assertFalse(rebuilt.contains("http-equiv=\"refresh\""), "no process holds the run: it is over");
        try (RunDirectory held = RunDirectory.open(run)) {
            Report.rebuild(run);
            assertTrue(Files.readString(run.resolve("report.html")).contains("http-equiv=\"refresh\""), "a run going on reloads itself");
        }
    }

    /** The event file holds, step by step, the scalars metrics.jsonl holds, each record's CRCs right. */
    @Test
    void theTensorBoardEventsHoldTheMetrics() throws Exception {
        Path run = tinyRun();
        Path events;
        try (Stream<Path> s = Files.list(run)) {
            events = s.filter(f -> f.getFileName().toString().startsWith("events.out.tfevents.")).findFirst().orElseThrow();
        }
        List<byte[]> records = records(Files.readAllBytes(events));
        assertEquals("brain.Event:2", field(records.get(0), 3).toStringUtf8());
        List<Report.Point> points = MetricsLog.read(run.resolve("metrics.jsonl"));
        assertEquals(points.size() + 1, records.size());
        for (int i = 0; i < points.size(); i++) {
            Report.Point p = points.get(i);
            CodedInputStream e = CodedInputStream.newInstance(records.get(i + 1));
            long step = -1;
            Map<String, Float> values = new LinkedHashMap<>();
            for (int tag = e.readTag(); tag != 0; tag = e.readTag()) {
                switch (WireFormat.getTagFieldNumber(tag)) {
                    case 2 -> step = e.readInt64();
                    case 5 -> {
                        CodedInputStream summary = CodedInputStream.newInstance(e.readBytes().toByteArray());
                        for (int t = summary.readTag(); t != 0; t = summary.readTag()) {
                            CodedInputStream value = CodedInputStream.newInstance(summary.readBytes().toByteArray());
                            String name = null;
                            float v = Float.NaN;
                            for (int u = value.readTag(); u != 0; u = value.readTag()) {
                                if (WireFormat.getTagFieldNumber(u) == 1) name = value.readString(); else v = value.readFloat();
                            }
                            values.put(name, v);
                        }
                    }
                    default -> e.skipField(tag);
                }
            }
            assertEquals(p.step(), step);
            assertEquals((float) p.loss(), values.get("loss/train"));
            assertEquals((float) p.lr(), values.get("learning_rate"));
            assertEquals(!Double.isNaN(p.val()), values.containsKey("loss/validation"));
            assertEquals((float) (p.memory().get("parameters") / 1048576.0), values.get("memory_mib/parameters"));
        }
    }

    /** The records of a TFRecord file, each one's length and data checked against their masked CRC-32C. */
    private static List<byte[]> records(byte[] file) {
        List<byte[]> out = new ArrayList<>();
        ByteBuffer b = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN);
        while (b.hasRemaining()) {
            byte[] length = new byte[8];
            b.get(length);
            assertEquals(crc(length), b.getInt());
            byte[] data = new byte[(int) ByteBuffer.wrap(length).order(ByteOrder.LITTLE_ENDIAN).getLong()];
            b.get(data);
            assertEquals(crc(data), b.getInt());
            out.add(data);
        }
        return out;
    }

    /** TFRecord's masked CRC-32C, computed here bit by bit (polynomial 0x82F63B78), not with the JDK's CRC32C. */
    private static int crc(byte[] data) {
        int c = 0xFFFFFFFF;
        for (byte x : data) {
            c ^= x & 0xFF;
            for (int k = 0; k < 8; k++) c = (c >>> 1) ^ (0x82F63B78 & -(c & 1));
        }
        c = ~c;
        return ((c >>> 15) | (c << 17)) + 0xa282ead8;
    }

    @Test
    void theBitwiseCrcMatchesTheKnownCheckValue() {
        // CRC-32C of "123456789" is 0xE3069283; masked as TFRecord masks it.
        int c = 0xE3069283;
        assertEquals(((c >>> 15) | (c << 17)) + 0xa282ead8, crc("123456789".getBytes(java.nio.charset.StandardCharsets.US_ASCII)));
    }

    private static com.google.protobuf.ByteString field(byte[] message, int number) throws IOException {
        CodedInputStream in = CodedInputStream.newInstance(message);
        for (int tag = in.readTag(); tag != 0; tag = in.readTag()) {
            if (WireFormat.getTagFieldNumber(tag) == number) return in.readBytes();
            in.skipField(tag);
        }
        throw new AssertionError("no field " + number);
    }

    private Path tinyRun() throws Exception {
        return tinyRun(dir);
    }

    /** A 4-step llama-tiny pipeline run in {@code dir}, traced for 2 steps, evaluated every 2, LISA redrawing every 2. */
    static Path tinyRun(Path dir) throws Exception {
        Path corpus = dir.resolve("corpus.txt");
        Files.writeString(corpus, "In the beginning was the word, and the word was with God.\n".repeat(60));
        com.typesafe.config.Config conf = com.typesafe.config.ConfigFactory.parseString("relay.train { model = llama-tiny, data = \""
                        + corpus + "\", steps = 4, batch = 2, seq = 16, microbatches = 2, eval-every = 2, eval-sequences = 4, trace-steps = 2, "
                        + "lisa.period = 2, validation-fraction = 0.1 }")
                .withFallback(com.typesafe.config.ConfigFactory.load()).resolve();
        return TrainingRun.run(TrainConfig.from(conf), conf, new java.io.PrintStream(java.io.OutputStream.nullOutputStream()), null,
                dir.resolve("run")).directory();
    }
}
