package relay.stages.data;

import com.google.gson.JsonElement;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.CoderResult;
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

    /**
     * Reads a corpus from a stream (closed afterwards); the path names it and tells its format by its ending.
     * The text must be UTF-8: a byte sequence that is not, or a NUL byte (binary data), is an error giving
     * its byte offset (in the decompressed text of a .gz).
     */
    public static List<String> read(Path file, InputStream stream) {
        String name = file.getFileName().toString();
        boolean gz = name.endsWith(".gz");
        boolean jsonl = name.endsWith(".jsonl") || name.endsWith(".jsonl.gz");
        String where = gz ? " of its decompressed text" : "";
        List<String> docs = new ArrayList<>();
        CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
        try (InputStream raw = stream; InputStream in = gz ? new GZIPInputStream(raw, 1 << 16) : raw) {
            ByteArrayOutputStream line = new ByteArrayOutputStream();
            byte[] buf = new byte[1 << 16];
            long offset = 0, lineStart = 0;
            int lines = 0, len;
            while ((len = in.read(buf)) > 0) {
                int from = 0;
                for (int i = 0; i < len; i++) {
                    if (buf[i] == 0) {
                        throw new ModelFileException(file, "binary data, not text: a NUL byte at byte offset " + (offset + i) + where);
                    }
                    if (buf[i] != '\n') continue;
                    line.write(buf, from, i - from);
                    add(docs, decode(line.toByteArray(), utf8, file, lineStart, where), ++lines, jsonl, file);
                    line.reset();
                    from = i + 1;
                    lineStart = offset + from;
                }
                line.write(buf, from, len - from);
                offset += len;
            }
            if (line.size() > 0) add(docs, decode(line.toByteArray(), utf8, file, lineStart, where), ++lines, jsonl, file);
        } catch (IOException e) {
            throw new ModelFileException(file, "cannot read the corpus: " + e.getMessage(), e);
        }
        if (docs.isEmpty()) throw new ModelFileException(file, "the corpus holds no text");
        return docs;
    }

    /** Adds line n's document: the line itself, or a JSONL line's text; blank lines (and a byte-order mark) are skipped. */
    private static void add(List<String> docs, String line, int n, boolean jsonl, Path file) {
        String text = n == 1 && line.startsWith("\uFEFF") ? line.substring(1) : line;
        if (text.endsWith("\r")) text = text.substring(0, text.length() - 1);
        if (!text.isBlank()) docs.add(jsonl ? textOf(file, n, text) : text);
    }

    /** One line's bytes as text; bytes that are not UTF-8 are an error giving the offset of the first. */
    private static String decode(byte[] bytes, CharsetDecoder utf8, Path file, long lineStart, String where) {
        ByteBuffer in = ByteBuffer.wrap(bytes);
        CharBuffer out = CharBuffer.allocate(bytes.length);
        CoderResult r = utf8.reset().decode(in, out, true);
        if (!r.isError()) r = utf8.flush(out);
        if (r.isError()) {
            throw new ModelFileException(file, "not UTF-8 text: invalid byte 0x" + String.format("%02X", bytes[in.position()] & 0xFF)
                    + " at byte offset " + (lineStart + in.position()) + where + " (a corpus must be UTF-8 text or JSONL)");
        }
        return out.flip().toString();
    }

    private static String textOf(Path file, int line, String json) {
        try {
            JsonElement e = JsonParser.parseString(json);
            if (!e.isJsonObject() || !e.getAsJsonObject().has("text") || !e.getAsJsonObject().get("text").isJsonPrimitive()) {
                throw new ModelFileException(file, "line " + line + " has no string field 'text'");
            }
            return e.getAsJsonObject().get("text").getAsString();
        } catch (JsonParseException e) {
            throw new ModelFileException(file, "line " + line + " is not JSON (a JSONL corpus has a JSON object with a 'text' field per line)", e);
        }
    }
}
