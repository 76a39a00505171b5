package relay.stages.text;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import relay.stages.io.ModelFileException;

/** Hugging Face's tokenizer.json for BPE models: read (byte-level or metaspace with byte fallback) and write (byte-level). */
public final class TokenizerJson {
    private TokenizerJson() {}

    public static Tokenizer read(Path file) {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new ModelFileException(file, "cannot read: " + e.getMessage(), e);
        }
        try {
            JsonElement root = JsonParser.parseString(text);
            if (!root.isJsonObject()) throw new ModelFileException(file, "not a JSON object");
            JsonObject o = root.getAsJsonObject();
            JsonObject model = object(o, "model", file);
            String type = model.has("type") ? model.get("type").getAsString() : "BPE";
            if (!type.equals("BPE")) throw new ModelFileException(file, "model type " + type + " is not supported (BPE only)");
            JsonObject vocabJson = object(model, "vocab", file);
            JsonArray addedJson = o.has("added_tokens") && o.get("added_tokens").isJsonArray() ? o.getAsJsonArray("added_tokens")
                    : new JsonArray();
            // Ids are dense in a real tokenizer: one past every entry is the most a valid file can use.
            int limit = vocabJson.size() + addedJson.size();
            Map<String, Integer> vocab = new LinkedHashMap<>();
            Map<Integer, String> owner = new java.util.HashMap<>();
            for (Map.Entry<String, JsonElement> e : vocabJson.entrySet()) {
                int id = id(e.getValue(), "vocab entry '" + e.getKey() + "'", limit, file);
                String before = owner.put(id, e.getKey());
                if (before != null) throw new ModelFileException(file, "vocab entries '" + before + "' and '" + e.getKey() + "' share id " + id);
                vocab.put(e.getKey(), id);
            }
            if (!model.has("merges") || !model.get("merges").isJsonArray()) throw new ModelFileException(file, "model has no 'merges' list");
            List<String> merges = new ArrayList<>();
            for (JsonElement m : model.getAsJsonArray("merges")) {
                if (m.isJsonArray()) {
                    merges.add(m.getAsJsonArray().get(0).getAsString() + " " + m.getAsJsonArray().get(1).getAsString());
                } else {
                    String s = m.getAsString();
                    if (s.indexOf(' ') <= 0) throw new ModelFileException(file, "merge '" + s + "' is not two tokens");
                    merges.add(s);
                }
            }
            Map<String, Integer> special = new LinkedHashMap<>();
            for (JsonElement a : addedJson) {
                String content = a.getAsJsonObject().get("content").getAsString();
                special.put(content, id(a.getAsJsonObject().get("id"), "added token '" + content + "'", limit, file));
            }
            boolean byteLevel = mentions(o.get("pre_tokenizer"), "ByteLevel");
            boolean metaspace = mentions(o.get("pre_tokenizer"), "Metaspace") || mentions(o.get("normalizer"), "\u2581");
            if (!byteLevel && !metaspace) {
                throw new ModelFileException(file, "neither a ByteLevel nor a Metaspace pre-tokenizer: unsupported BPE flavour");
            }
            for (String m : merges) {
                String[] p = m.split(" ", 2);
                if (!vocab.containsKey(p[0]) || !vocab.containsKey(p[1]) || !vocab.containsKey(p[0] + p[1])) {
                    throw new ModelFileException(file, "merge '" + m + "' uses or makes a token missing from the vocabulary");
                }
            }
            return new Tokenizer(byteLevel ? Tokenizer.Kind.BYTE_LEVEL : Tokenizer.Kind.METASPACE, vocab, merges, special);
        } catch (ModelFileException e) {
            throw e;
        } catch (JsonParseException | IllegalStateException | UnsupportedOperationException | NullPointerException e) {
            throw new ModelFileException(file, "malformed tokenizer.json: " + e.getMessage(), e);
        }
    }

    /** A token id: a whole number from 0 to limit − 1. */
    private static int id(JsonElement e, String what, int limit, Path file) {
        int id;
        try {
            id = e.getAsJsonPrimitive().getAsBigDecimal().intValueExact();
        } catch (RuntimeException notWhole) {
            throw new ModelFileException(file, what + " has id " + e + ", not a whole number");
        }
        if (id < 0 || id >= limit) {
            throw new ModelFileException(file, what + " has id " + id + ", outside 0.." + (limit - 1) + " (the file's " + limit + " entries)");
        }
        return id;
    }

    /** The tokenizer.json of a model directory; its absence is an error naming the directory. */
    public static Tokenizer ofModel(Path modelDir) {
        Path file = modelDir.resolve("tokenizer.json");
        if (!Files.isRegularFile(file)) throw new ModelFileException(file, "the model directory has no tokenizer.json");
        return read(file);
    }

    private static JsonObject object(JsonObject o, String key, Path file) {
        if (!o.has(key) || !o.get(key).isJsonObject()) throw new ModelFileException(file, "missing '" + key + "' object");
        return o.getAsJsonObject(key);
    }

    private static boolean mentions(JsonElement e, String word) {
        return e != null && !e.isJsonNull() && e.toString().contains(word);
    }

    /** Writes a byte-level BPE tokenizer as tokenizer.json that Hugging Face's tokenizers reads as it is. */
    public static void write(Tokenizer t, Path file) throws IOException {
        if (t.kind() != Tokenizer.Kind.BYTE_LEVEL) throw new IllegalArgumentException("only byte-level tokenizers are written");
        JsonObject o = new JsonObject();
        o.addProperty("version", "1.0");
        o.add("truncation", JsonNull.INSTANCE);
        o.add("padding", JsonNull.INSTANCE);
        JsonArray added = new JsonArray();
        t.specialTokens().forEach((content, id) -> {
            JsonObject a = new JsonObject();
            a.addProperty("id", id);
            a.addProperty("content", content);
            a.addProperty("single_word", false);
            a.addProperty("lstrip", false);
            a.addProperty("rstrip", false);
            a.addProperty("normalized", false);
            a.addProperty("special", true);
            added.add(a);
        });
        o.add("added_tokens", added);
        o.add("normalizer", JsonNull.INSTANCE);
        o.add("pre_tokenizer", byteLevel(false));
        o.add("post_processor", byteLevel(true));
        o.add("decoder", byteLevel(true));
        JsonObject model = new JsonObject();
        model.addProperty("type", "BPE");
        model.add("dropout", JsonNull.INSTANCE);
        model.add("unk_token", JsonNull.INSTANCE);
        model.add("continuing_subword_prefix", JsonNull.INSTANCE);
        model.add("end_of_word_suffix", JsonNull.INSTANCE);
        model.addProperty("fuse_unk", false);
        model.addProperty("byte_fallback", false);
        JsonObject vocab = new JsonObject();
        t.vocab().entrySet().stream().sorted(Map.Entry.comparingByValue()).forEach(e -> vocab.addProperty(e.getKey(), e.getValue()));
        model.add("vocab", vocab);
        JsonArray merges = new JsonArray();
        t.merges().forEach(merges::add);
        model.add("merges", merges);
        o.add("model", model);
        Path parent = file.toAbsolutePath().getParent();
        if (parent != null) Files.createDirectories(parent);
        Files.writeString(file, new GsonBuilder().disableHtmlEscaping().setPrettyPrinting().create().toJson(o) + "\n", StandardCharsets.UTF_8);
    }

    private static JsonObject byteLevel(boolean prefixSpace) {
        JsonObject p = new JsonObject();
        p.addProperty("type", "ByteLevel");
        p.addProperty("add_prefix_space", prefixSpace);
        p.addProperty("trim_offsets", true);
        p.addProperty("use_regex", true);
        return p;
    }
}
