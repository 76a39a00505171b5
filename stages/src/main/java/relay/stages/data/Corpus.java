package relay.stages.data;

import com.google.gson.JsonElement;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.GZIPInputStream;
import relay.stages.io.ModelFileException;

/**
 * A training corpus as a list of documents: plain text (one document per line, blank lines skipped) or
 * JSONL (a {@code text} field per line), optionally gzipped. Problems name the file and the line.
 */
public final class Corpus {
    private Corpus() {}

    public static List<String> read(Path file) {
        if (!Files.isRegularFile(file)) throw new ModelFileException(file, "no such corpus file");
        try {
            return read(file, Files.newInputStream(file));
        } catch (IOException e) {
            throw new ModelFileException(file, "cannot read the corpus: " + e.getMessage(), e);
        }
    }

    /** Reads a corpus from a stream (closed afterwards); the path names it and tells its format by its ending. */
    public static List<String> read(Path file, InputStream stream) {
        String name = file.getFileName().toString();
        boolean gz = name.endsWith(".gz");
        boolean jsonl = name.endsWith(".jsonl") || name.endsWith(".jsonl.gz");
        List<String> docs = new ArrayList<>();
        try (InputStream raw = stream;
             InputStream in = gz ? new GZIPInputStream(raw) : raw;
             BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            String line;
            int n = 0;
            while ((line = r.readLine()) != null) {
                n++;
                if (line.isBlank()) continue;
                docs.add(jsonl ? textOf(file, n, line) : line);
            }
        } catch (IOException e) {
            throw new ModelFileException(file, "cannot read the corpus: " + e.getMessage(), e);
        }
        if (docs.isEmpty()) throw new ModelFileException(file, "the corpus holds no text");
        return docs;
    }

    private static String textOf(Path file, int line, String json) {
        try {
            JsonElement e = JsonParser.parseString(json);
            if (!e.isJsonObject() || !e.getAsJsonObject().has("text") || !e.getAsJsonObject().get("text").isJsonPrimitive()) {
                throw new ModelFileException(file, "line " + line + " has no string field 'text'");
            }
            return e.getAsJsonObject().get("text").getAsString();
        } catch (JsonParseException e) {
            throw new ModelFileException(file, "line " + line + " is not JSON: " + e.getMessage(), e);
        }
    }
}
