package relay.stages.text;

import com.google.gson.Gson;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Small tokenizer.json files written to the format's specification, one per component under test. */
public final class TokenizerFiles {
    private TokenizerFiles() {}

    /** Llama 3's pre-tokenization pattern, as its tokenizer.json's Split has it. */
    static final String LLAMA3_PATTERN =
            "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

    /** A tokenizer.json: each component a JSON text ("null" for none), the model a BPE. */
    public static String tokenizer(String added, String normalizer, String preTokenizer, String postProcessor, String decoder, String model) {
        return """
                {"version": "1.0", "truncation": null, "padding": null,
                 "added_tokens": %s, "normalizer": %s, "pre_tokenizer": %s, "post_processor": %s, "decoder": %s, "model": %s}
                """.formatted(added, normalizer, preTokenizer, postProcessor, decoder, model);
    }

    /** A BPE model's fields other than its vocabulary and merges: no unknown token, no byte fallback, merges always applied. */
    public static final String PLAIN = "\"dropout\": null, \"unk_token\": null, \"fuse_unk\": false, \"byte_fallback\": false, \"ignore_merges\": false";

    public static String bpe(String vocab, String merges) {
        return bpe(vocab, merges, PLAIN);
    }

    public static String bpe(String vocab, String merges, String fields) {
        return "{\"type\": \"BPE\", %s, \"vocab\": %s, \"merges\": %s}".formatted(fields, vocab, merges);
    }

    public static String added(int id, String content, boolean special, boolean normalized, boolean lstrip, boolean rstrip) {
        return "{\"id\": %d, \"content\": %s, \"single_word\": false, \"lstrip\": %b, \"rstrip\": %b, \"normalized\": %b, \"special\": %b}"
                .formatted(id, new Gson().toJson(content), lstrip, rstrip, normalized, special);
    }

    /** TemplateProcessing: [bos] $A [eos], bos and eos given as token and id (null: left out). */
    public static String template(String bos, int bosId, String eos, int eosId) {
        StringBuilder single = new StringBuilder(), pair = new StringBuilder(), specials = new StringBuilder();
        for (int seq = 0; seq < 2; seq++) {
            StringBuilder t = seq == 0 ? single : pair;
            if (seq == 1) t.append(single).append(", ");
            if (bos != null) t.append("{\"SpecialToken\": {\"id\": \"%s\", \"type_id\": %d}}, ".formatted(bos, seq));
            t.append("{\"Sequence\": {\"id\": \"%s\", \"type_id\": %d}}".formatted(seq == 0 ? "A" : "B", seq));
            if (eos != null) t.append(", {\"SpecialToken\": {\"id\": \"%s\", \"type_id\": %d}}".formatted(eos, seq));
        }
        if (bos != null) specials.append("\"%s\": {\"id\": \"%s\", \"ids\": [%d], \"tokens\": [\"%s\"]}".formatted(bos, bos, bosId, bos));
        if (eos != null) {
            if (bos != null) specials.append(", ");
            specials.append("\"%s\": {\"id\": \"%s\", \"ids\": [%d], \"tokens\": [\"%s\"]}".formatted(eos, eos, eosId, eos));
        }
        return "{\"type\": \"TemplateProcessing\", \"single\": [%s], \"pair\": [%s], \"special_tokens\": {%s}}".formatted(single, pair, specials);
    }

    /**
     * Llama 2's layout: normalizer Sequence[Prepend("▁"), Replace(" " → "▁")], no pre-tokenizer, BPE with byte
     * fallback, TemplateProcessing "&lt;s&gt; $A", decoder Sequence[Replace("▁" → " "), ByteFallback, Fuse, Strip(1, 0)].
     * Vocabulary: &lt;unk&gt; 0, &lt;s&gt; 1, &lt;/s&gt; 2, &lt;0xC3&gt; 3, &lt;0xA9&gt; 4, ▁ 5, h 6, i 7, ▁h 8, ▁hi 9;
     * merges "▁ h", "▁h i".
     */
    public static String llama2() {
        return tokenizer(
                "[" + added(0, "<unk>", true, false, false, false) + ", " + added(1, "<s>", true, false, false, false) + ", "
                        + added(2, "</s>", true, false, false, false) + "]",
                """
                {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                  {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}""",
                "null",
                template("<s>", 1, null, -1),
                """
                {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                  {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}""",
                bpe("""
                    {"<unk>": 0, "<s>": 1, "</s>": 2, "<0xC3>": 3, "<0xA9>": 4, "▁": 5, "h": 6, "i": 7, "▁h": 8, "▁hi": 9}""",
                        "[\"▁ h\", \"▁h i\"]", "\"dropout\": null, \"unk_token\": \"<unk>\", \"fuse_unk\": true, \"byte_fallback\": true, \"ignore_merges\": false"));
    }

    /** Writes files (name, content, name, content, ...) into a directory; returns its tokenizer.json. */
    public static Path write(Path dir, String... namesAndContents) throws IOException {
        Files.createDirectories(dir);
        for (int i = 0; i < namesAndContents.length; i += 2) {
            Files.writeString(dir.resolve(namesAndContents[i]), namesAndContents[i + 1], StandardCharsets.UTF_8);
        }
        return dir.resolve("tokenizer.json");
    }
}
