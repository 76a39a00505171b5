package relay.stages.text;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import relay.stages.io.ModelFileException;

/**
 * A model's tokenizer: its tokenizer.json run by Hugging Face's tokenizers library itself (through DJL's Java
 * binding), so every normalizer, pre-tokenizer, model, post-processor and decoder the file names works exactly as in
 * Hugging Face, and the roles the model's other files give tokens.
 *
 * <p>What is read beside tokenizer.json, when present, and how (transformers 4.x's reading of them):
 * <ul>
 *   <li>tokenizer_config.json: {@code bos_token}, {@code eos_token}, {@code pad_token} (a string or an AddedToken
 *   object's "content"; special_tokens_map.json supplies those it leaves out), {@code chat_template} (a string, or a
 *   list of {name, template} of which "default" is taken) and {@code tokenizer_class}. For {@code LlamaTokenizer} and
 *   {@code LlamaTokenizerFast}, as {@code LlamaTokenizerFast.update_post_processor} does, the post-processor is rebuilt
 *   from {@code add_bos_token} (default true) and {@code add_eos_token} (default false) as a template around the
 *   text, and an absent bos_token / eos_token is "&lt;s&gt;" / "&lt;/s&gt;"; every other class keeps tokenizer.json's
 *   post_processor and ignores the two flags. (transformers 5 reads the flags differently: it drops them when a
 *   tokenizer.json is present.)</li>
 *   <li>generation_config.json: {@code eos_token_id} (an id or a list), every one of which also ends a sequence.</li>
 *   <li>chat_template.jinja: the chat template, before tokenizer_config.json's, as transformers prefers it.</li>
 * </ul>
 * Nothing is truncated or padded. Encoding is safe from many threads at once: the library's tokenizer is immutable
 * once built.
 */
public final class Tokenizer {
    static {
        // DJL may reach for the network (telemetry, downloads) unless told it is offline; its native library comes in its jar.
        System.setProperty("offline", "true");
    }

    private static final List<String> FILES = List.of("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
            "generation_config.json", "chat_template.jinja");
    private static final Set<String> LLAMA_CLASSES = Set.of("LlamaTokenizer", "LlamaTokenizerFast");
    private static final Map<String, String> OPTIONS = Map.of("addSpecialTokens", "false", "truncation", "false", "padding", "false");

    private final Path file;
    private final Map<String, byte[]> files;
    private final HuggingFaceTokenizer library;
    private final int size;
    private final SpecialTokens special;
    private final String chatTemplate;

    private Tokenizer(Path file, Map<String, byte[]> files, HuggingFaceTokenizer library, int size, SpecialTokens special,
                      String chatTemplate) {
        this.file = file;
        this.files = files;
        this.library = library;
        this.size = size;
        this.special = special;
        this.chatTemplate = chatTemplate;
    }

    /** The tokenizer of a model directory: its tokenizer.json (required) and the files beside it. */
    public static Tokenizer ofModel(Path modelDir) {
        Path file = modelDir.resolve("tokenizer.json");
        if (!Files.isRegularFile(file)) throw new ModelFileException(file, "the model directory has no tokenizer.json");
        return read(file);
    }

    /** The tokenizer of a tokenizer.json, with the files beside it in its directory. */
    public static Tokenizer read(Path tokenizerJson) {
        if (!Files.isRegularFile(tokenizerJson)) throw new ModelFileException(tokenizerJson, "no such tokenizer file");
        Map<String, byte[]> files = new LinkedHashMap<>();
        for (String name : FILES) {
            Path f = name.equals("tokenizer.json") ? tokenizerJson : tokenizerJson.resolveSibling(name);
            if (!Files.isRegularFile(f)) continue;
            try {
                files.put(name, Files.readAllBytes(f));
            } catch (IOException e) {
                throw new ModelFileException(f, "cannot read: " + e.getMessage(), e);
            }
        }
        return of(tokenizerJson, files);
    }

    /** @param files the contents of tokenizer.json and those of the other files there are, by name; {@code file} names tokenizer.json in messages */
    static Tokenizer of(Path file, Map<String, byte[]> files) {
        String text = new String(files.get("tokenizer.json"), StandardCharsets.UTF_8);
        JsonObject json = object(file, text);
        checkComponents(file, json);
        HuggingFaceTokenizer library = load(file, text);
        Map<String, Integer> ids = tokenIds(file, json);
        int size = ids.values().stream().mapToInt(Integer::intValue).max().orElse(-1) + 1;

        Path configFile = file.resolveSibling("tokenizer_config.json"), mapFile = file.resolveSibling("special_tokens_map.json");
        Path generationFile = file.resolveSibling("generation_config.json");
        JsonObject config = optional(files, "tokenizer_config.json", configFile), map = optional(files, "special_tokens_map.json", mapFile);
        JsonObject generation = optional(files, "generation_config.json", generationFile);
        JsonElement cls = config.get("tokenizer_class");
        boolean llama = cls != null && cls.isJsonPrimitive() && LLAMA_CLASSES.contains(cls.getAsString());

        String bosToken = named("bos_token", config, configFile, map, mapFile, llama ? "<s>" : null, ids);
        String eosNamed = named("eos_token", config, configFile, map, mapFile, llama ? "</s>" : null, ids);
        String padToken = named("pad_token", config, configFile, map, mapFile, null, ids);
        int bos = bosToken == null ? -1 : ids.get(bosToken);
        LinkedHashSet<Integer> eos = new LinkedHashSet<>();
        if (eosNamed != null) eos.add(ids.get(eosNamed));
        JsonElement generationEos = generation.get("eos_token_id");
        if (generationEos != null && !generationEos.isJsonNull()) {
            for (JsonElement e : generationEos.isJsonArray() ? generationEos.getAsJsonArray() : List.of(generationEos)) {
                eos.add(id(e, "eos_token_id", size, generationFile));
            }
        }
        String eosToken = eosNamed != null || eos.isEmpty() ? eosNamed : tokenOf(ids, eos.iterator().next());
        // Relay never pads, so a pad token the tokenizer lacks is simply none.
        int pad = padToken == null ? -1 : ids.getOrDefault(padToken, -1);
        SpecialTokens special = new SpecialTokens(bos, bosToken, eos.stream().mapToInt(Integer::intValue).toArray(), eosToken, pad);

        if (llama) {
            boolean addBos = flag(config, "add_bos_token", true, configFile), addEos = flag(config, "add_eos_token", false, configFile);
            if (addBos && bosToken == null) throw new ModelFileException(configFile, "add_bos_token is on but there is no bos_token");
            if (addEos && eosNamed == null) throw new ModelFileException(configFile, "add_eos_token is on but there is no eos_token");
            json.add("post_processor", template(addBos ? bosToken : null, bos, addEos ? eosNamed : null, addEos ? ids.get(eosNamed) : -1));
            library.close();
            library = load(file, json.toString());
        }
        return new Tokenizer(file, Map.copyOf(files), library, size, special, chatTemplate(files, config, configFile));
    }

    /**
     * The component types of tokenizer.json by section, as the tokenizers library (0.21) names them. The library reads
     * a component of an unknown type whose fields fit a known one as that one; Relay refuses it by name instead.
     */
    private static final Map<String, Set<String>> COMPONENTS = Map.of(
            "normalizer", Set.of("BertNormalizer", "Strip", "StripAccents", "NFC", "NFD", "NFKC", "NFKD", "Sequence", "Lowercase", "Nmt",
                    "Precompiled", "Replace", "Prepend", "ByteLevel"),
            "pre_tokenizer", Set.of("BertPreTokenizer", "ByteLevel", "CharDelimiterSplit", "Metaspace", "Whitespace", "Sequence", "Split",
                    "Punctuation", "WhitespaceSplit", "Digits", "UnicodeScripts", "FixedLength"),
            "model", Set.of("BPE", "WordPiece", "WordLevel", "Unigram"),
            "post_processor", Set.of("RobertaProcessing", "BertProcessing", "ByteLevel", "TemplateProcessing", "Sequence"),
            "decoder", Set.of("BPEDecoder", "ByteLevel", "WordPiece", "Metaspace", "CTC", "Sequence", "Replace", "Fuse", "Strip", "ByteFallback"));

    /** Every component's "type", nested ones (a Sequence's members) included, must be one the library knows for its section. */
    private static void checkComponents(Path file, JsonObject json) {
        COMPONENTS.forEach((section, known) -> checkTypes(file, section, json.get(section), known));
    }

    private static void checkTypes(Path file, String section, JsonElement e, Set<String> known) {
        if (e == null || e.isJsonNull()) return;
        if (e.isJsonArray()) {
            e.getAsJsonArray().forEach(m -> checkTypes(file, section, m, known));
            return;
        }
        if (!e.isJsonObject()) return;
        JsonElement type = e.getAsJsonObject().get("type");
        if (type != null && type.isJsonPrimitive() && !known.contains(type.getAsString())) {
            throw new ModelFileException(file, section + " type '" + type.getAsString() + "' is not one the tokenizers library knows "
                    + new java.util.TreeSet<>(known));
        }
        // A Sequence holds its members under a key of its own (normalizers, pretokenizers, processors, decoders).
        for (Map.Entry<String, JsonElement> m : e.getAsJsonObject().entrySet()) {
            if (m.getValue().isJsonArray() && !m.getKey().equals("vocab") && !m.getKey().equals("merges")) {
                checkTypes(file, section, m.getValue(), known);
            }
        }
    }

    private static HuggingFaceTokenizer load(Path file, String json) {
        try {
            return HuggingFaceTokenizer.newInstance(new ByteArrayInputStream(json.getBytes(StandardCharsets.UTF_8)), OPTIONS);
        } catch (IOException | RuntimeException e) {
            throw new ModelFileException(file, "the tokenizers library refuses it: " + oneLine(e.getMessage()), e);
        }
    }

    private static String oneLine(String s) {
        return s == null ? "(no reason given)" : s.strip().replaceAll("\\s*\\R\\s*", " ");
    }

    private static JsonObject object(Path file, String text) {
        try {
            JsonElement e = JsonParser.parseString(text);
            if (!e.isJsonObject()) throw new ModelFileException(file, "not a JSON object");
            return e.getAsJsonObject();
        } catch (RuntimeException e) {
            if (e instanceof ModelFileException m) throw m;
            throw new ModelFileException(file, "malformed JSON: " + oneLine(e.getMessage()), e);
        }
    }

    private static JsonObject optional(Map<String, byte[]> files, String name, Path file) {
        byte[] b = files.get(name);
        return b == null ? new JsonObject() : object(file, new String(b, StandardCharsets.UTF_8));
    }

    /**
     * Every token's id: the model's vocabulary (an object, or Unigram's list of [token, score]) and the added tokens,
     * numbered as the library numbers them whatever ids the file writes: a token of the vocabulary keeps its id,
     * another takes the next id after the vocabulary's entries and the added tokens before it.
     */
    private static Map<String, Integer> tokenIds(Path file, JsonObject json) {
        Map<String, Integer> ids = new HashMap<>();
        try {
            JsonElement vocab = json.getAsJsonObject("model").get("vocab");
            if (vocab != null && vocab.isJsonObject()) {
                for (Map.Entry<String, JsonElement> e : vocab.getAsJsonObject().entrySet()) ids.put(e.getKey(), e.getValue().getAsInt());
            } else if (vocab != null && vocab.isJsonArray()) {
                JsonArray pieces = vocab.getAsJsonArray();
                for (int i = 0; i < pieces.size(); i++) ids.put(pieces.get(i).getAsJsonArray().get(0).getAsString(), i);
            }
            int entries = ids.size();
            Integer last = null;
            JsonElement added = json.get("added_tokens");
            for (JsonElement a : added != null && added.isJsonArray() ? added.getAsJsonArray() : new JsonArray()) {
                String content = a.getAsJsonObject().get("content").getAsString();
                if (content.isEmpty()) continue;
                Integer id = ids.get(content);
                if (id == null) id = last == null ? entries : last >= entries || entries == 0 ? last + 1 : entries;
                ids.put(content, id);
                last = last == null ? id : Math.max(last, id);
            }
        } catch (RuntimeException e) {
            throw new ModelFileException(file, "cannot read its vocabulary: " + oneLine(e.getMessage()), e);
        }
        return ids;
    }

    /**
     * The token a config names for a role: tokenizer_config.json's entry, else special_tokens_map.json's, else the
     * default; an entry may be a string, an AddedToken object (its "content") or null (none). A named token missing
     * from tokenizer.json is refused; a missing default is none.
     */
    private static String named(String key, JsonObject config, Path configFile, JsonObject map, Path mapFile, String dflt,
                                Map<String, Integer> ids) {
        boolean inConfig = config.has(key);
        JsonElement e = inConfig ? config.get(key) : map.get(key);
        Path where = inConfig ? configFile : mapFile;
        if (e == null) return dflt != null && ids.containsKey(dflt) ? dflt : null;
        if (e.isJsonNull()) return null;
        String token;
        if (e.isJsonPrimitive() && e.getAsJsonPrimitive().isString()) {
            token = e.getAsString();
        } else if (e.isJsonObject() && e.getAsJsonObject().has("content") && e.getAsJsonObject().get("content").isJsonPrimitive()) {
            token = e.getAsJsonObject().get("content").getAsString();
        } else {
            throw new ModelFileException(where, key + " is " + e + ": neither a token nor an object with its \"content\"");
        }
        if (!ids.containsKey(token) && !key.equals("pad_token")) {
            throw new ModelFileException(where, key + " '" + token + "' is not a token of tokenizer.json");
        }
        return token;
    }

    private static int id(JsonElement e, String what, int size, Path file) {
        int id;
        try {
            id = e.getAsJsonPrimitive().getAsBigDecimal().intValueExact();
        } catch (RuntimeException notWhole) {
            throw new ModelFileException(file, what + " has " + e + ", not a token id");
        }
        if (id < 0 || id >= size) throw new ModelFileException(file, what + " has " + id + ", outside the tokenizer's ids 0.." + (size - 1));
        return id;
    }

    private static String tokenOf(Map<String, Integer> ids, int id) {
        return ids.entrySet().stream().filter(e -> e.getValue() == id).map(Map.Entry::getKey).findFirst().orElse(null);
    }

    private static boolean flag(JsonObject config, String key, boolean dflt, Path file) {
        JsonElement e = config.get(key);
        if (e == null) return dflt;
        if (e.isJsonNull()) return false;
        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isBoolean()) throw new ModelFileException(file, key + " is " + e + ", not true or false");
        return e.getAsBoolean();
    }

    /** tokenizer.json's TemplateProcessing: [bos] $A [eos] for one text, and the same again for the second of a pair. */
    private static JsonObject template(String bos, int bosId, String eos, int eosId) {
        JsonArray single = new JsonArray();
        around(single, bos, "A", eos, 0);
        JsonArray pair = single.deepCopy();
        around(pair, bos, "B", eos, 1);
        JsonObject specials = new JsonObject();
        if (bos != null) specials.add(bos, special(bos, bosId));
        if (eos != null) specials.add(eos, special(eos, eosId));
        JsonObject p = new JsonObject();
        p.addProperty("type", "TemplateProcessing");
        p.add("single", single);
        p.add("pair", pair);
        p.add("special_tokens", specials);
        return p;
    }

    private static void around(JsonArray template, String bos, String sequence, String eos, int typeId) {
        if (bos != null) template.add(piece("SpecialToken", bos, typeId));
        template.add(piece("Sequence", sequence, typeId));
        if (eos != null) template.add(piece("SpecialToken", eos, typeId));
    }

    private static JsonObject piece(String kind, String id, int typeId) {
        JsonObject inner = new JsonObject();
        inner.addProperty("id", id);
        inner.addProperty("type_id", typeId);
        JsonObject o = new JsonObject();
        o.add(kind, inner);
        return o;
    }

    private static JsonObject special(String token, int id) {
        JsonObject s = new JsonObject();
        s.addProperty("id", token);
        JsonArray ids = new JsonArray();
        ids.add(id);
        s.add("ids", ids);
        JsonArray tokens = new JsonArray();
        tokens.add(token);
        s.add("tokens", tokens);
        return s;
    }

    private static String chatTemplate(Map<String, byte[]> files, JsonObject config, Path configFile) {
        if (files.containsKey("chat_template.jinja")) return new String(files.get("chat_template.jinja"), StandardCharsets.UTF_8);
        JsonElement t = config.get("chat_template");
        if (t == null || t.isJsonNull()) return null;
        if (t.isJsonPrimitive()) return t.getAsString();
        if (t.isJsonArray()) {
            for (JsonElement e : t.getAsJsonArray()) {
                if (e.isJsonObject() && e.getAsJsonObject().has("name") && e.getAsJsonObject().get("name").getAsString().equals("default")) {
                    return e.getAsJsonObject().get("template").getAsString();
                }
            }
            return null;
        }
        throw new ModelFileException(configFile, "chat_template is neither a template nor a list of named templates");
    }

    /** Like Hugging Face's {@code tokenizer(text, add_special_tokens=False)}: added tokens in the text are recognized, nothing is added. */
    public int[] encode(String text) {
        return ints(library.encode(text, false, false).getIds());
    }

    /** Like Hugging Face's {@code tokenizer(text)}: the post-processor adds what the model puts around a text (BOS, EOS). */
    public int[] encodeDocument(String text) {
        return ints(library.encode(text, true, false).getIds());
    }

    private static int[] ints(long[] ids) {
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) out[i] = (int) ids[i];
        return out;
    }

    public String decode(int[] ids, boolean skipSpecialTokens) {
        long[] l = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= size) throw new IllegalArgumentException("token id " + ids[i] + " is outside the tokenizer's 0.." + (size - 1));
            l[i] = ids[i];
        }
        return library.decode(l, skipSpecialTokens);
    }

    /** Ids run from 0 to size − 1: one past the largest id of tokenizer.json's vocabulary and added tokens. */
    public int size() {
        return size;
    }

    public SpecialTokens special() {
        return special;
    }

    /** The id that ends each document of a corpus: the first end-of-sequence id; refused, saying how to name one, if there is none. */
    public int endOfDocument() {
        if (special.eos().length == 0) {
            throw new ModelFileException(file, "no end-of-sequence token to end documents with: name one as \"eos_token\" in the "
                    + "tokenizer_config.json beside it (or \"eos_token_id\" in generation_config.json)");
        }
        return special.eos()[0];
    }

    public Optional<String> chatTemplate() {
        return Optional.ofNullable(chatTemplate);
    }

    /** The tokenizer.json this tokenizer was read from, for messages. */
    public Path source() {
        return file;
    }

    /** Writes the tokenizer's files into a model directory, each as it was read. */
    public void writeTo(Path modelDir) throws IOException {
        Files.createDirectories(modelDir);
        for (Map.Entry<String, byte[]> f : files.entrySet()) relay.stages.io.FileWrites.writeBytes(modelDir.resolve(f.getKey()), f.getValue());
    }
}
