package relay.stages.data;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import relay.stages.io.ModelFileException;
import relay.stages.text.ChatTemplate;

/**
 * Instruction data: a JSONL file whose lines are conversations ({@code "messages": [{"role", "content"}, …]}) or
 * prompt/completion pairs ({@code "prompt"}, {@code "completion"}), one kind per file. Problems name the file and line.
 */
public final class Instructions {
    private Instructions() {}

    /** One example: what the model is shown and what it learns to answer. */
    public sealed interface Example permits Chat, Completion {
        /** The line of the file it came from. */
        int line();
    }

    /** A conversation; the loss counts the assistant's turns. */
    public record Chat(int line, List<ChatTemplate.Message> messages) implements Example {}

    /** A prompt and its completion; the loss counts the completion. */
    public record Completion(int line, String prompt, String completion) implements Example {}

    /** Whether a data file holds instruction examples: a .jsonl file whose first line has "messages" or "prompt". */
    public static boolean holds(Path file) {
        if (!file.getFileName().toString().endsWith(".jsonl") || !Files.isRegularFile(file)) return false;
        try (BufferedReader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            String line;
            while ((line = r.readLine()) != null && line.isBlank()) { }
            if (line == null) return false;
            JsonElement e = JsonParser.parseString(line);
            return e.isJsonObject() && (e.getAsJsonObject().has("messages") || e.getAsJsonObject().has("prompt"));
        } catch (IOException | JsonParseException e) {
            return false;
        }
    }

    public static List<Example> read(Path file) {
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new ModelFileException(file, "cannot read the instruction data: " + e.getMessage(), e);
        }
        List<Example> out = new ArrayList<>();
        Boolean chats = null;
        for (int i = 0; i < lines.size(); i++) {
            String text = lines.get(i);
            if (text.isBlank()) continue;
            Example e = parse(file, i + 1, text);
            if (chats == null) chats = e instanceof Chat;
            if (chats != (e instanceof Chat)) {
                throw new ModelFileException(file, "line " + (i + 1) + " mixes kinds: every line has 'messages', or every line 'prompt' and 'completion'");
            }
            out.add(e);
        }
        if (out.isEmpty()) throw new ModelFileException(file, "holds no examples");
        return out;
    }

    private static Example parse(Path file, int line, String text) {
        JsonObject o;
        try {
            JsonElement e = JsonParser.parseString(text);
            if (!e.isJsonObject()) throw new ModelFileException(file, "line " + line + " is not a JSON object");
            o = e.getAsJsonObject();
        } catch (JsonParseException e) {
            throw new ModelFileException(file, "line " + line + " is not JSON: " + e.getMessage(), e);
        }
        if (o.has("messages")) {
            if (!o.get("messages").isJsonArray()) throw new ModelFileException(file, "line " + line + ": 'messages' is not a list");
            JsonArray a = o.getAsJsonArray("messages");
            List<ChatTemplate.Message> messages = new ArrayList<>();
            boolean answered = false;
            for (int k = 0; k < a.size(); k++) {
                String role = string(a.get(k), "role", file, line, k), content = string(a.get(k), "content", file, line, k);
                answered |= role.equals("assistant");
                messages.add(new ChatTemplate.Message(role, content));
            }
            if (!answered) throw new ModelFileException(file, "line " + line + " has no assistant message to learn from");
            return new Chat(line, List.copyOf(messages));
        }
        if (o.has("prompt") && o.has("completion")) {
            return new Completion(line, field(o, "prompt", file, line), field(o, "completion", file, line));
        }
        throw new ModelFileException(file, "line " + line + " has neither 'messages' nor 'prompt' and 'completion'");
    }

    private static String string(JsonElement message, String key, Path file, int line, int index) {
        if (!message.isJsonObject()) throw new ModelFileException(file, "line " + line + ": message " + index + " is not an object");
        return field(message.getAsJsonObject(), key, file, line);
    }

    private static String field(JsonObject o, String key, Path file, int line) {
        JsonElement v = o.get(key);
        if (v == null || !v.isJsonPrimitive() || !v.getAsJsonPrimitive().isString()) {
            throw new ModelFileException(file, "line " + line + ": '" + key + "' is missing or not a string");
        }
        return v.getAsString();
    }
}
