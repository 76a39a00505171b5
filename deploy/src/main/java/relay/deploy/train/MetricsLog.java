package relay.deploy.train;

import com.google.gson.Gson;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import relay.stages.io.FileWrites;
import relay.stages.io.ModelFileException;

/**
 * The run's metrics: metrics.jsonl, a JSON line per step (with the validation loss on evaluation steps),
 * flushed as the run goes, so a run that stops leaves every step it finished on disk; and the same scalars
 * as TensorBoard events ({@link TensorBoardLog}) beside it.
 */
final class MetricsLog {
    private final Path file;
    private final TensorBoardLog board;
    private final Gson gson = new Gson();

    private MetricsLog(Path file) throws IOException {
        this.file = file;
        this.board = TensorBoardLog.create(file.getParent());
    }

    static MetricsLog create(Path file) throws IOException {
        FileWrites.writeString(file, "");
        return new MetricsLog(file);
    }

    /**
     * Reopens the log of a run resumed after {@code step}: the points up to it go into {@code kept}, and the
     * lines after it — steps the resumed run does again — are dropped, as is a last line cut short by the
     * stop; a malformed line before it is an error.
     */
    static MetricsLog resume(Path file, int step, List<Report.Point> kept) throws IOException {
        List<String> keep = new ArrayList<>();
        for (Map.Entry<String, Report.Point> line : parse(file)) {
            if (line.getValue().step() > step) continue;
            keep.add(line.getKey());
            kept.add(line.getValue());
        }
        FileWrites.writeString(file, keep.stream().map(l -> l + "\n").collect(java.util.stream.Collectors.joining()));
        return new MetricsLog(file);
    }

    /** The points of a run's metrics.jsonl as written so far. */
    static List<Report.Point> read(Path file) throws IOException {
        return parse(file).stream().map(Map.Entry::getValue).toList();
    }

    /** Each line with its point; a last line cut short by a stop is left out, and a malformed line before it is an error. */
    private static List<Map.Entry<String, Report.Point>> parse(Path file) throws IOException {
        List<String> lines = Files.isRegularFile(file) ? Files.readAllLines(file, StandardCharsets.UTF_8) : List.of();
        List<Map.Entry<String, Report.Point>> out = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            if (lines.get(i).isBlank()) continue;
            try {
                out.add(Map.entry(lines.get(i), point(JsonParser.parseString(lines.get(i)).getAsJsonObject())));
            } catch (RuntimeException e) {
                if (i == lines.size() - 1) break;
                throw new ModelFileException(file, "line " + (i + 1) + " is not a metrics record: " + e.getMessage(), e);
            }
        }
        return out;
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
        FileWrites.appendString(file, gson.toJson(line) + "\n");
        Map<String, Double> scalars = new LinkedHashMap<>();
        scalars.put("loss/train", p.loss());
        scalars.put("loss/validation", p.val());
        scalars.put("learning_rate", p.lr());
        scalars.put("tokens_per_s", p.tokensPerSecond());
        p.memory().forEach((category, bytes) -> scalars.put("memory_mib/" + category, bytes / 1048576.0));
        board.scalars(p.step(), scalars);
    }

    private static Report.Point point(JsonObject o) {
        Map<String, Long> memory = new LinkedHashMap<>();
        o.getAsJsonObject("peak_bytes").entrySet().forEach(e -> memory.put(e.getKey(), e.getValue().getAsLong()));
        return new Report.Point(o.get("step").getAsInt(), o.get("loss").getAsDouble(),
                o.has("val_loss") ? o.get("val_loss").getAsDouble() : Double.NaN, o.get("lr").getAsDouble(),
                o.get("tokens_per_s").getAsDouble(), memory);
    }
}
