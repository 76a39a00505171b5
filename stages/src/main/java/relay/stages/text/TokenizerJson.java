package relay.stages.text;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/** A byte-level BPE that {@link BpeTrainer} learned, as the Hugging Face files of a model's tokenizer. */
public final class TokenizerJson {
    /** The special token a trained tokenizer ends documents with (and names its beginning-of-sequence token, as GPT-2 does). */
    public static final String END_OF_TEXT = "<|endoftext|>";

    private TokenizerJson() {}

    /** Writes tokenizer.json and tokenizer_config.json into a directory. */
    public static void write(ByteLevelBpe bpe, Path dir) throws IOException {
        load(bpe).writeTo(dir);
    }

    /** The tokenizer of these files, run by the tokenizers library like any model's. */
    public static Tokenizer load(ByteLevelBpe bpe) {
        Map<String, byte[]> files = new LinkedHashMap<>();
        files.put("tokenizer.json", json(tokenizerJson(bpe)));
        files.put("tokenizer_config.json", json(tokenizerConfig(bpe)));
        return Tokenizer.of(Path.of("tokenizer.json"), files);
    }

    private static byte[] json(JsonObject o) {
        return (new GsonBuilder().disableHtmlEscaping().setPrettyPrinting().create().toJson(o) + "\n").getBytes(StandardCharsets.UTF_8);
    }

    /** GPT-2's layout: ByteLevel pre-tokenizer (GPT-2's regex), post-processor and decoder, no normalizer, the special tokens added. */
    private static JsonObject tokenizerJson(ByteLevelBpe bpe) {
        JsonObject o = new JsonObject();
        o.addProperty("version", "1.0");
        o.add("truncation", JsonNull.INSTANCE);
        o.add("padding", JsonNull.INSTANCE);
        JsonArray added = new JsonArray();
        bpe.special().entrySet().stream().sorted(Map.Entry.comparingByValue()).forEach(e -> {
            JsonObject a = new JsonObject();
            a.addProperty("id", e.getValue());
            a.addProperty("content", e.getKey());
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
        bpe.vocab().entrySet().stream().sorted(Map.Entry.comparingByValue()).forEach(e -> vocab.addProperty(e.getKey(), e.getValue()));
        model.add("vocab", vocab);
        JsonArray merges = new JsonArray();
        bpe.merges().forEach(merges::add);
        model.add("merges", merges);
        o.add("model", model);
        return o;
    }

    private static JsonObject byteLevel(boolean prefixSpace) {
        JsonObject p = new JsonObject();
        p.addProperty("type", "ByteLevel");
        p.addProperty("add_prefix_space", prefixSpace);
        p.addProperty("trim_offsets", true);
        p.addProperty("use_regex", true);
        return p;
    }

    /**
     * A generic fast tokenizer class, so transformers keeps tokenizer.json's post-processor (nothing added around a
     * document), with {@link #END_OF_TEXT} as both ends when the tokenizer has it.
     */
    private static JsonObject tokenizerConfig(ByteLevelBpe bpe) {
        JsonObject c = new JsonObject();
        c.addProperty("tokenizer_class", "PreTrainedTokenizerFast");
        c.addProperty("clean_up_tokenization_spaces", false);
        if (bpe.special().containsKey(END_OF_TEXT)) {
            c.addProperty("bos_token", END_OF_TEXT);
            c.addProperty("eos_token", END_OF_TEXT);
        }
        return c;
    }
}
