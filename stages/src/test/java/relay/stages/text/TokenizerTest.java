package relay.stages.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import relay.stages.io.ModelFileException;

/**
 * Relay's tokenizers against Hugging Face's tokenizers library on a varied text (accents, CJK, emoji,
 * digits, tabs, runs of spaces, CRLF, contractions, a special token): fixtures/tokenizers/make_expected.py
 * made expected.json.
 */
class TokenizerTest {
    @TempDir
    Path dir;

    static Path fixtures() throws Exception {
        return Path.of(TokenizerTest.class.getResource("/fixtures/tokenizers/expected.json").toURI()).getParent();
    }

    static int[] ids(JsonObject o, String key) {
        return o.getAsJsonArray(key).asList().stream().mapToInt(e -> e.getAsInt()).toArray();
    }

    @Test
    void byteLevelMatchesHuggingFace() throws Exception {
        JsonObject exp = JsonParser.parseString(Files.readString(fixtures().resolve("expected.json"))).getAsJsonObject();
        Tokenizer t = TokenizerJson.read(fixtures().resolve("byte-level/tokenizer.json"));
        String text = exp.get("text").getAsString(), special = exp.get("special").getAsString();
        int[] got = t.encode(text + special + text);
        assertArrayEquals(ids(exp, "byte_level"), got);
        assertEquals(text + special + text, t.decode(got), "byte-level BPE round-trips any text");
    }

    @Test
    void metaspaceWithByteFallbackMatchesHuggingFace() throws Exception {
        JsonObject exp = JsonParser.parseString(Files.readString(fixtures().resolve("expected.json"))).getAsJsonObject();
        Tokenizer t = TokenizerJson.read(fixtures().resolve("metaspace/tokenizer.json"));
        assertEquals(Tokenizer.Kind.METASPACE, t.kind());
        String text = exp.get("text").getAsString();
        int[] got = t.encode(text);
        assertArrayEquals(ids(exp, "metaspace"), got);
        assertEquals(text, t.decode(got), "byte fallback keeps characters outside the vocabulary");
    }

    @Test
    void trainedTokenizerRoundTripsThroughTokenizerJson() throws Exception {
        List<String> texts = List.of("the cat sat on the mat\n", "the dog sat on the log\n", "thé café 東京\n");
        Tokenizer t = BpeTrainer.train(texts, 280, List.of("<|endoftext|>"), n -> { });
        assertEquals(280, t.size());
        assertEquals(279, (int) t.specialTokens().get("<|endoftext|>"));
        assertTrue(t.vocab().containsKey("\u0120the") || t.vocab().containsKey("Ġsat"), "frequent words become tokens");
        Path f = dir.resolve("tokenizer.json");
        TokenizerJson.write(t, f);
        Tokenizer back = TokenizerJson.read(f);
        String s = "the cat ate thé dog<|endoftext|>";
        assertArrayEquals(t.encode(s), back.encode(s));
        assertEquals(s, back.decode(back.encode(s)));
        assertTrue(t.encode("the").length < "the".length(), "merges shorten text");
    }

    @Test
    void malformedTokenizerFilesNameTheFileAndProblem() throws Exception {
        Path f = dir.resolve("tokenizer.json");
        Files.writeString(f, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
        ModelFileException e = assertThrows(ModelFileException.class, () -> TokenizerJson.read(f));
        assertTrue(e.getMessage().startsWith(f + ": model type WordPiece is not supported"), e.getMessage());
        Files.writeString(f, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}");
        assertTrue(assertThrows(ModelFileException.class, () -> TokenizerJson.read(f)).getMessage().contains("no 'merges'"));
        Files.writeString(f, "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}");
        assertTrue(assertThrows(ModelFileException.class, () -> TokenizerJson.read(f)).getMessage().contains("missing from the vocabulary"));
        Files.writeString(f, "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}");
        assertTrue(assertThrows(ModelFileException.class, () -> TokenizerJson.read(f)).getMessage()
                .endsWith(": vocab entry 'a' has id -1, outside 0..0 (the file's 1 entries)"));
        Files.writeString(f, "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}");
        assertTrue(assertThrows(ModelFileException.class, () -> TokenizerJson.read(f)).getMessage().endsWith("share id 0"));
        Files.writeString(f, "{\"model\": ");
        assertTrue(assertThrows(ModelFileException.class, () -> TokenizerJson.read(f)).getMessage().contains("malformed"));
        assertTrue(assertThrows(ModelFileException.class, () -> TokenizerJson.read(dir.resolve("none.json"))).getMessage().contains("cannot read"));
    }
}
