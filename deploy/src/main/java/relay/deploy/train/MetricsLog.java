package relay.deploy.train;

import com.google.gson.Gson;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import relay.stages.io.ModelFileException;

/**
 * metrics.jsonl: a JSON line per step (with the validation loss on evaluation steps), flushed as the run
 * goes, so a run that stops leaves every step it finished on disk.
 */
final class MetricsLog implements AutoCloseable {
    private final BufferedWriter writer;
    private final Gson gson = new Gson();

    private MetricsLog(BufferedWriter writer) {
        this.writer = writer;
    }

    static MetricsLog create(Path file) throws IOException {
        return new MetricsLog(Files.newBufferedWriter(file, StandardCharsets.UTF_8));
    }

    /**
     * Reopens the log of a run resumed after {@code step}: the points up to it go into {@code kept}, and the
     * lines after it — steps the resumed run does again — are dropped, as is a last line cut short by the
     * stop; a malformed line before it is an error.
     */
    static MetricsLog resume(Path file, int step, List<Report.Point> kept) throws IOException {
        List<String> lines = Files.isRegularFile(file) ? Files.readAllLines(file, StandardCharsets.UTF_8) : List.of();
        List<String> keep = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            if (lines.get(i).isBlank()) continue;
            Report.Point p;
            try {
                p = point(JsonParser.parseString(lines.get(i)).getAsJsonObject());
            } catch (RuntimeException e) {
                if (i == lines.size() - 1) break;
                throw new ModelFileException(file, "line " + (i + 1) + " is not a metrics record: " + e.getMessage(), e);
            }
            if (p.step() > step) continue;
            keep.add(lines.get(i));
            kept.add(p);
        }
        Files.write(file, keep, StandardCharsets.UTF_8);
        return new MetricsLog(Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.APPEND));
    }

    void append(Report.Point p, double seconds, double bubble) throws IOException {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("step", p.step());
        line.put("loss", p.loss());
        if (!Double.isNaN(p.val())) line.put("val_loss", p.val());
        line.put("lr", p.lr());
        line.put("tokens_per_s", p.tokensPerSecond());
        line.put("seconds", seconds);
        line.put("bubble", bubble);
        line.put("peak_bytes", p.memory());
        writer.write(gson.toJson(line));
        writer.newLine();
        writer.flush();
    }

    private static Report.Point point(JsonObject o) {
        Map<String, Long> memory = new LinkedHashMap<>();
        o.getAsJsonObject("peak_bytes").entrySet().forEach(e -> memory.put(e.getKey(), e.getValue().getAsLong()));
        return new Report.Point(o.get("step").getAsInt(), o.get("loss").getAsDouble(),
                o.has("val_loss") ? o.get("val_loss").getAsDouble() : Double.NaN, o.get("lr").getAsDouble(),
                o.get("tokens_per_s").getAsDouble(), memory);
    }

    @Override
    public void close() throws IOException {
        writer.close();
    }
}
