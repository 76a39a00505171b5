package relay.stages.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static relay.stages.text.TokenizerFiles.added;
import static relay.stages.text.TokenizerFiles.bpe;
import static relay.stages.text.TokenizerFiles.template;
import static relay.stages.text.TokenizerFiles.tokenizer;

import com.google.gson.Gson;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import relay.stages.io.ModelFileException;

/**
 * Each component of tokenizer.json on a small file written to the format's specification, with the ids worked
 * out by hand in the comments; then the files beside it (tokenizer_config.json, generation_config.json,
 * special_tokens_map.json, chat_template.jinja), the refusals, and two larger tokenizers against ids that
 * Hugging Face's tokenizers library itself recorded (fixtures/tokenizers/make_expected.py).
 */
class TokenizerTest {
    @TempDir
    Path dir;

    private int files;

    /** The tokenizer of these files (name, content, ...), each set in a fresh directory. */
    private Tokenizer load(String... namesAndContents) throws Exception {
        return Tokenizer.read(TokenizerFiles.write(dir.resolve("t" + files++), namesAndContents));
    }

    private static final String BYTE_LEVEL = "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": %b}";

    /** GPT-2's layout: ByteLevel pre-tokenizer with its regex, ByteLevel post-processor and decoder, &lt;|endoftext|&gt; 18 special. */
    private Tokenizer gpt2() throws Exception {
        return load("tokenizer.json", tokenizer("[" + added(18, "<|endoftext|>", true, false, false, false) + "]", "null",
                BYTE_LEVEL.formatted(true), BYTE_LEVEL.formatted(true), BYTE_LEVEL.formatted(true),
                bpe("""
                    {"H": 0, "i": 1, "Ġ": 2, "t": 3, "h": 4, "e": 5, "r": 6, "'": 7, "s": 8, "1": 9, "2": 10, "3": 11,
                     "Ġt": 12, "Ġth": 13, "er": 14, "Ġther": 15, "Ġthere": 16, "'s": 17}""",
                        "[\"Ġ t\", \"Ġt h\", \"e r\", \"Ġth er\", \"Ġther e\", \"' s\"]")));
    }

    @Test
    void byteLevelWithGpt2sPattern() throws Exception {
        Tokenizer t = gpt2();
        // The special token is cut out first: "Hi there's 123" | <|endoftext|> | "Hi". GPT-2's pattern splits the first
        // into "Hi", " there", "'s", " 123" (a contraction apart; a digit run whole, with its space). Spaces become Ġ.
        // "Hi": no merge of H, i → 0 1. "Ġthere": Ġ t → Ġt, Ġt h → Ġth, e r → er, Ġth er → Ġther, Ġther e → Ġthere = 16.
        // "'s": ' s → 's = 17. "Ġ123": no merge → 2 9 10 11. Then 18, and "Hi" → 0 1.
        int[] ids = t.encode("Hi there's 123<|endoftext|>Hi");
        assertArrayEquals(new int[] {0, 1, 16, 17, 2, 9, 10, 11, 18, 0, 1}, ids);
        // ByteLevel's post-processor adds nothing: a document is the same ids.
        assertArrayEquals(ids, t.encodeDocument("Hi there's 123<|endoftext|>Hi"));
        assertEquals("Hi there's 123<|endoftext|>Hi", t.decode(ids, false));
        assertEquals("Hi there's 123Hi", t.decode(ids, true), "special tokens skipped");
        // Ids 0..18: one past the largest, the added token's.
        assertEquals(19, t.size());
        assertThrows(IllegalArgumentException.class, () -> t.decode(new int[] {19}, false));
    }

    @Test
    void aLongTextIsNeitherTruncatedNorPadded() throws Exception {
        // "HiHi...Hi" (600 times) is one letter run; H and i never merge: 1,200 ids, past any default maximum length.
        int[] ids = gpt2().encode("Hi".repeat(600));
        assertEquals(1200, ids.length);
        for (int i = 0; i < ids.length; i++) assertEquals(i % 2, ids[i]);
    }

    @Test
    void byteLevelLlama3StyleSplitsDigitsInThreesAndContractionsOfAnyCase() throws Exception {
        String pre = "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": %s}, \"behavior\": \"Isolated\", "
                .formatted(new Gson().toJson(TokenizerFiles.LLAMA3_PATTERN)) + "\"invert\": false}, " + BYTE_LEVEL.formatted(false) + "]}";
        Tokenizer t = load("tokenizer.json", tokenizer("[" + added(28, "<|begin_of_text|>", true, false, false, false) + "]", "null", pre,
                template("<|begin_of_text|>", 28, null, -1), BYTE_LEVEL.formatted(true),
                bpe("""
                    {"1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "Ġ": 5, "I": 6, "T": 7, "'": 8, "S": 9, "o": 10, "k": 11, "(": 12,
                     ")": 13, "!": 14, "Ċ": 15, "34": 16, "12": 17, "123": 18, "45": 19, "ĠI": 20, "ĠIT": 21, "'S": 22, "ok": 23,
                     "(ok": 24, ")!": 25, ")!!": 26, ")!!Ċ": 27}""",
                        "[\"3 4\", \"1 2\", \"12 3\", \"4 5\", \"Ġ I\", \"ĠI T\", \"' S\", \"o k\", \"( ok\", \") !\", \")! !\", \")!! Ċ\"]")));
        // Llama 3's pattern cuts "12345 IT'Sok(ok)!!\n" into "123", "45" (digits in threes, so the first-ranked merge
        // "3 4" never applies), " IT", "'S" (a contraction, case-insensitive, leaving "ok"), "ok", "(ok" (one mark
        // attached before letters), ")!!\n" (marks with the newline after them). ByteLevel without its own regex maps
        // each piece's bytes (space Ġ, newline Ċ). Merges: 1 2 → 12, 12 3 → 123 = 18; 4 5 → 45 = 19; Ġ I, ĠI T → ĠIT = 21;
        // ' S → 'S = 22; o k → ok = 23; o k then ( ok → (ok = 24; ) !, )! !, )!! Ċ → )!!Ċ = 27.
        int[] ids = t.encode("12345 IT'Sok(ok)!!\n");
        assertArrayEquals(new int[] {18, 19, 21, 22, 23, 24, 27}, ids);
        // The template puts <|begin_of_text|> (28) first.
        assertArrayEquals(new int[] {28, 18, 19, 21, 22, 23, 24, 27}, t.encodeDocument("12345 IT'Sok(ok)!!\n"));
        assertEquals("12345 IT'Sok(ok)!!\n", t.decode(ids, false));
    }

    @Test
    void metaspaceNormalizersByteFallbackBosTemplateAndSentencePieceDecoder() throws Exception {
        Tokenizer t = load("tokenizer.json", TokenizerFiles.llama2());
        // Prepend then Replace: "hi hé" → "▁hi▁hé", one word (no pre-tokenizer): ▁ h i ▁ h, and é (not in the vocabulary)
        // as its UTF-8 bytes <0xC3> <0xA9> = 3 4. Merges: ▁ h → ▁h (both places), ▁h i → ▁hi: ▁hi ▁h <0xC3> <0xA9>.
        int[] ids = t.encode("hi hé");
        assertArrayEquals(new int[] {9, 8, 3, 4}, ids);
        assertArrayEquals(new int[] {1, 9, 8, 3, 4}, t.encodeDocument("hi hé"), "the template's <s> first");
        // Decoder: ▁ → space, the two bytes → é, fused " hi hé", one leading space stripped.
        assertEquals("hi hé", t.decode(ids, true));
        // With <s> kept: "<s> hi hé" fused, and it does not start with a space to strip.
        assertEquals("<s> hi hé", t.decode(new int[] {1, 9, 8, 3, 4}, false));
        assertEquals("hi hé", t.decode(new int[] {1, 9, 8, 3, 4}, true));
    }

    @Test
    void ignoreMergesTakesAWholeWordFromTheVocabulary() throws Exception {
        String vocab = "{\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"abc\": 4}", merges = "[\"a b\"]";
        // Merging: a b → ab, and "ab c" is no merge: 3 2. Ignoring merges: "abc" is in the vocabulary: 4.
        assertArrayEquals(new int[] {3, 2}, load("tokenizer.json", tokenizer("[]", "null", "null", "null", "null", bpe(vocab, merges))).encode("abc"));
        assertArrayEquals(new int[] {4}, load("tokenizer.json", tokenizer("[]", "null", "null", "null", "null",
                bpe(vocab, merges, TokenizerFiles.PLAIN.replace("\"ignore_merges\": false", "\"ignore_merges\": true")))).encode("abc"));
    }

    @Test
    void normalizers() throws Exception {
        String vocab = "{\"f\": 0, \"i\": 1, \"a\": 2, \" \": 3, \"é\": 4, \"e\": 5, \"\u0301\": 6}";
        String sequence = "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFKC\"}, {\"type\": \"Lowercase\"}, "
                + "{\"type\": \"Strip\", \"strip_left\": true, \"strip_right\": true}]}";
        // NFKC: the ligature ﬁ → "fi"; Lowercase: A → a; Strip: the spaces around go: "fia" → 0 1 2.
        assertArrayEquals(new int[] {0, 1, 2}, load("tokenizer.json", tokenizer("[]", sequence, "null", "null", "null", bpe(vocab, "[]")))
                .encode("  \uFB01A  "));
        // NFC composes e + combining acute into é (4); without a normalizer they stay two (5 6).
        assertArrayEquals(new int[] {4}, load("tokenizer.json", tokenizer("[]", "{\"type\": \"NFC\"}", "null", "null", "null",
                bpe(vocab, "[]"))).encode("e\u0301"));
        assertArrayEquals(new int[] {5, 6}, load("tokenizer.json", tokenizer("[]", "null", "null", "null", "null", bpe(vocab, "[]")))
                .encode("e\u0301"));
    }

    @Test
    void metaspacePreTokenizerAndDecoder() throws Exception {
        String vocab = "{\"▁\": 0, \"a\": 1, \"b\": 2, \"▁a\": 3, \"▁b\": 4, \"a▁\": 5}", merges = "[\"a ▁\", \"▁ a\", \"▁ b\"]";
        String addedX = "[" + added(6, "<x>", true, false, false, false) + "]";
        String metaspace = "{\"type\": \"Metaspace\", \"replacement\": \"▁\", \"prepend_scheme\": \"%s\", \"split\": %b}";
        Tokenizer always = load("tokenizer.json", tokenizer(addedX, "null", metaspace.formatted("always", true), "null",
                metaspace.formatted("always", true), bpe(vocab, merges)));
        Tokenizer first = load("tokenizer.json", tokenizer(addedX, "null", metaspace.formatted("first", true), "null", "null", bpe(vocab, merges)));
        Tokenizer never = load("tokenizer.json", tokenizer(addedX, "null", metaspace.formatted("never", true), "null", "null", bpe(vocab, merges)));
        Tokenizer whole = load("tokenizer.json", tokenizer(addedX, "null", metaspace.formatted("always", false), "null", "null", bpe(vocab, merges)));
        // always: "a b" → "▁a▁b", split before each ▁: "▁a" (▁ a → 3), "▁b" (▁ b → 4).
        assertArrayEquals(new int[] {3, 4}, always.encode("a b"));
        // Around an added token each piece is its own text: always prepends to both "a" and "b" → 3 6 4 ...
        assertArrayEquals(new int[] {3, 6, 4}, always.encode("a<x>b"));
        // ... first only to the piece at the start of the text: "▁a", <x>, "b" → 3 6 2.
        assertArrayEquals(new int[] {3, 4}, first.encode("a b"));
        assertArrayEquals(new int[] {3, 6, 2}, first.encode("a<x>b"));
        // never: "a▁b" → "a", "▁b" → 1 4.
        assertArrayEquals(new int[] {1, 4}, never.encode("a b"));
        // split false: "▁a▁b" stays one word; the first-ranked merge a ▁ applies: ▁ a▁ b → 0 5 2.
        assertArrayEquals(new int[] {0, 5, 2}, whole.encode("a b"));
        // The Metaspace decoder turns ▁ into spaces and drops the one it prepended: "a b".
        assertEquals("a b", always.decode(new int[] {3, 4}, false));
    }

    @Test
    void digitsPreTokenizer() throws Exception {
        String vocab = "{\"a\": 0, \"1\": 1, \"2\": 2, \"12\": 3, \"a1\": 4}", merges = "[\"a 1\", \"1 2\"]";
        String digits = "{\"type\": \"Digits\", \"individual_digits\": %b}";
        // individual: "a", "1", "2" → 0 1 2.
        assertArrayEquals(new int[] {0, 1, 2}, load("tokenizer.json", tokenizer("[]", "null", digits.formatted(true), "null", "null",
                bpe(vocab, merges))).encode("a12"));
        // runs: "a", "12" (1 2 → 12) → 0 3.
        assertArrayEquals(new int[] {0, 3}, load("tokenizer.json", tokenizer("[]", "null", digits.formatted(false), "null", "null",
                bpe(vocab, merges))).encode("a12"));
        // No pre-tokenizer: one word, the first-ranked a 1 → a1, and "a1 2" is no merge → 4 2.
        assertArrayEquals(new int[] {4, 2}, load("tokenizer.json", tokenizer("[]", "null", "null", "null", "null", bpe(vocab, merges)))
                .encode("a12"));
    }

    @Test
    void templateWithBosAndEos() throws Exception {
        Tokenizer t = load("tokenizer.json", tokenizer("[" + added(0, "<s>", true, false, false, false) + ", "
                + added(1, "</s>", true, false, false, false) + "]", "null", "null", template("<s>", 0, "</s>", 1), "null",
                bpe("{\"<s>\": 0, \"</s>\": 1, \"a\": 2}", "[]")));
        // <s> $A </s> around "aa" (no merges: a a) → 0 2 2 1; plain encoding adds nothing.
        assertArrayEquals(new int[] {0, 2, 2, 1}, t.encodeDocument("aa"));
        assertArrayEquals(new int[] {2, 2}, t.encode("aa"));
    }

    @Test
    void addedTokensStripSpacesAndMatchRawOrNormalizedText() throws Exception {
        String addedTokens = "[" + added(5, "<x>", true, false, true, true) + ", " + added(6, "<y>", false, false, false, false) + ", "
                + added(7, "AB", false, false, false, false) + ", " + added(8, "CD", false, true, false, false) + "]";
        Tokenizer t = load("tokenizer.json", tokenizer(addedTokens, "{\"type\": \"Lowercase\"}", "null", "null", "{\"type\": \"Fuse\"}",
                bpe("{\"a\": 0, \"b\": 1, \" \": 2, \"c\": 3, \"d\": 4}", "[]")));
        // <x> strips the space on each side into itself: a, <x>, b → 0 5 1. <y> does not: a, space, <y>, space, b.
        assertArrayEquals(new int[] {0, 5, 1}, t.encode("a <x> b"));
        assertArrayEquals(new int[] {0, 2, 6, 2, 1}, t.encode("a <y> b"));
        // "AB" (normalized false) matches the raw text only: "AB" → 7, but "ab" is a b → 0 1.
        assertArrayEquals(new int[] {7}, t.encode("AB"));
        assertArrayEquals(new int[] {0, 1}, t.encode("ab"));
        // "CD" (normalized true) is matched in the lowercased text, as "cd": both spellings → 8.
        assertArrayEquals(new int[] {8}, t.encode("CD"));
        assertArrayEquals(new int[] {8}, t.encode("cd"));
        // Decoding skips the special <x>, never the plain <y>; Fuse joins the pieces.
        assertEquals("ab", t.decode(new int[] {0, 5, 1}, true));
        assertEquals("a<x>b", t.decode(new int[] {0, 5, 1}, false));
        assertEquals("a <y> b", t.decode(new int[] {0, 2, 6, 2, 1}, true));
    }

    @Test
    void addedTokensTakeTheIdsTheLibraryGivesThem() throws Exception {
        // The library numbers an added token missing from the vocabulary after the vocabulary's 3 entries, whatever id
        // the file writes: <z> is 3, one past the vocabulary; the size counts it. <a> is the vocabulary's a: 0.
        Tokenizer t = load("tokenizer.json", tokenizer("[" + added(50, "<z>", true, false, false, false) + ", "
                + added(9, "a", true, false, false, false) + "]", "null", "null", "null", "null",
                bpe("{\"a\": 0, \"b\": 1, \"c\": 2}", "[]")));
        assertArrayEquals(new int[] {1, 3, 0}, t.encode("b<z>a"));
        assertEquals(4, t.size());
    }

    @Test
    void specialTokensFromEachFile() throws Exception {
        String tok = TokenizerFiles.llama2();
        // Ids in llama2(): <unk> 0, <s> 1, </s> 2.
        SpecialTokens none = load("tokenizer.json", tok).special();
        assertEquals(-1, none.bos());
        assertEquals(0, none.eos().length);
        assertEquals(-1, none.pad());
        // Strings and an AddedToken object in tokenizer_config.json.
        SpecialTokens s = load("tokenizer.json", tok, "tokenizer_config.json",
                "{\"bos_token\": {\"content\": \"<s>\", \"lstrip\": false, \"normalized\": false, \"rstrip\": false, \"single_word\": false},"
                        + " \"eos_token\": \"</s>\", \"pad_token\": \"<unk>\"}").special();
        assertEquals(1, s.bos());
        assertEquals("<s>", s.bosToken());
        assertArrayEquals(new int[] {2}, s.eos());
        assertEquals("</s>", s.eosToken());
        assertEquals(0, s.pad());
        // generation_config.json's list adds to the config's eos_token (2 once, then 0).
        assertArrayEquals(new int[] {2, 0}, load("tokenizer.json", tok, "tokenizer_config.json", "{\"eos_token\": \"</s>\"}",
                "generation_config.json", "{\"eos_token_id\": [2, 0]}").special().eos());
        // generation_config.json alone, one id: its token is the eos token.
        SpecialTokens g = load("tokenizer.json", tok, "generation_config.json", "{\"bos_token_id\": 1, \"eos_token_id\": 0}").special();
        assertArrayEquals(new int[] {0}, g.eos());
        assertEquals("<unk>", g.eosToken());
        assertTrue(g.endsSequence(0) && !g.endsSequence(2));
        // special_tokens_map.json supplies what tokenizer_config.json leaves out.
        SpecialTokens m = load("tokenizer.json", tok, "tokenizer_config.json", "{\"bos_token\": \"<s>\"}", "special_tokens_map.json",
                "{\"bos_token\": \"</s>\", \"eos_token\": {\"content\": \"</s>\"}}").special();
        assertEquals(1, m.bos());
        assertArrayEquals(new int[] {2}, m.eos());
    }

    @Test
    void addBosAndEosTokenRebuildTheTemplateForLlamaClassesOnly() throws Exception {
        String tok = TokenizerFiles.llama2();
        // "hi hé" encodes to 9 8 3 4 (see metaspaceNormalizers...); tokenizer.json's template adds <s> (1).
        assertArrayEquals(new int[] {9, 8, 3, 4}, load("tokenizer.json", tok, "tokenizer_config.json",
                "{\"tokenizer_class\": \"LlamaTokenizerFast\", \"add_bos_token\": false, \"bos_token\": \"<s>\"}").encodeDocument("hi hé"));
        // add_bos_token defaults to true; add_eos_token appends </s> (2).
        assertArrayEquals(new int[] {1, 9, 8, 3, 4, 2}, load("tokenizer.json", tok, "tokenizer_config.json",
                "{\"tokenizer_class\": \"LlamaTokenizer\", \"add_eos_token\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}")
                .encodeDocument("hi hé"));
        // A Llama class with no tokens named takes <s> and </s>, which this tokenizer has.
        Tokenizer defaults = load("tokenizer.json", tok, "tokenizer_config.json", "{\"tokenizer_class\": \"LlamaTokenizer\"}");
        assertArrayEquals(new int[] {1, 9, 8, 3, 4}, defaults.encodeDocument("hi hé"));
        assertEquals(1, defaults.special().bos());
        assertArrayEquals(new int[] {2}, defaults.special().eos());
        // Another class keeps tokenizer.json's template, whatever the flags say.
        assertArrayEquals(new int[] {1, 9, 8, 3, 4}, load("tokenizer.json", tok, "tokenizer_config.json",
                "{\"tokenizer_class\": \"PreTrainedTokenizerFast\", \"add_bos_token\": false, \"add_eos_token\": true, \"eos_token\": \"</s>\"}")
                .encodeDocument("hi hé"));
    }

    @Test
    void chatTemplates() throws Exception {
        String tok = TokenizerFiles.llama2();
        assertEquals(Optional.empty(), load("tokenizer.json", tok).chatTemplate());
        assertEquals(Optional.of("{{ messages }}"), load("tokenizer.json", tok, "tokenizer_config.json",
                "{\"chat_template\": \"{{ messages }}\"}").chatTemplate());
        assertEquals(Optional.of("B"), load("tokenizer.json", tok, "tokenizer_config.json",
                "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"A\"}, {\"name\": \"default\", \"template\": \"B\"}]}").chatTemplate());
        assertEquals(Optional.of("J\n"), load("tokenizer.json", tok, "tokenizer_config.json", "{\"chat_template\": \"C\"}",
                "chat_template.jinja", "J\n").chatTemplate(), "the .jinja file first");
    }

    @Test
    void writeToCopiesTheFilesByteForByte() throws Exception {
        String config = "{\"eos_token\": \"</s>\",   \"tokenizer_class\": \"LlamaTokenizer\"}\n";
        Tokenizer t = load("tokenizer.json", TokenizerFiles.llama2(), "tokenizer_config.json", config, "generation_config.json",
                "{\"eos_token_id\": 2}", "chat_template.jinja", "{{ x }}");
        Path out = dir.resolve("model");
        t.writeTo(out);
        for (String f : List.of("tokenizer.json", "tokenizer_config.json", "generation_config.json", "chat_template.jinja")) {
            assertArrayEquals(Files.readAllBytes(dir.resolve("t0").resolve(f)), Files.readAllBytes(out.resolve(f)), f);
        }
        assertFalse(Files.exists(out.resolve("special_tokens_map.json")), "only the files it had");
        assertArrayEquals(t.encodeDocument("hi hé"), Tokenizer.ofModel(out).encodeDocument("hi hé"));
    }

    @Test
    void refusalsNameTheFileInOneLine() throws Exception {
        String tok = TokenizerFiles.llama2();
        // A component of an unknown type is refused by name, even one whose other fields would let the library read it as a known
        // type (ByteFallback has none, so the library would take "Frobnicate" for one of several field-less decoders).
        Path unknown = TokenizerFiles.write(dir.resolve("unknown"), "tokenizer.json", tok.replace("\"type\": \"ByteFallback\"", "\"type\": \"Frobnicate\""));
        ModelFileException e = assertThrows(ModelFileException.class, () -> Tokenizer.read(unknown));
        assertTrue(e.getMessage().startsWith(unknown + ": decoder type 'Frobnicate' is not one the tokenizers library knows"), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
        Path model = TokenizerFiles.write(dir.resolve("model"), "tokenizer.json", tok.replace("\"type\": \"BPE\"", "\"type\": \"Frob\""));
        assertTrue(assertThrows(ModelFileException.class, () -> Tokenizer.read(model)).getMessage().startsWith(model + ": model type 'Frob'"));
        Path malformed = TokenizerFiles.write(dir.resolve("malformed"), "tokenizer.json", "{\"model\": ");
        e = assertThrows(ModelFileException.class, () -> Tokenizer.read(malformed));
        assertTrue(e.getMessage().startsWith(malformed + ": ") && !e.getMessage().contains("\n"), e.getMessage());
        Path empty = Files.createDirectories(dir.resolve("empty"));
        assertEquals(empty.resolve("tokenizer.json") + ": the model directory has no tokenizer.json",
                assertThrows(ModelFileException.class, () -> Tokenizer.ofModel(empty)).getMessage());
        assertEquals(empty.resolve("none.json") + ": no such tokenizer file",
                assertThrows(ModelFileException.class, () -> Tokenizer.read(empty.resolve("none.json"))).getMessage());
        // The files beside it: a token that tokenizer.json lacks, an id outside it, malformed JSON.
        assertTrue(assertThrows(ModelFileException.class, () -> load("tokenizer.json", tok, "tokenizer_config.json", "{\"eos_token\": \"<nope>\"}"))
                .getMessage().endsWith("tokenizer_config.json: eos_token '<nope>' is not a token of tokenizer.json"));
        assertTrue(assertThrows(ModelFileException.class, () -> load("tokenizer.json", tok, "generation_config.json", "{\"eos_token_id\": 99}"))
                .getMessage().endsWith("generation_config.json: eos_token_id has 99, outside the tokenizer's ids 0..9"));
        assertTrue(assertThrows(ModelFileException.class, () -> load("tokenizer.json", tok, "tokenizer_config.json", "{\"eos_token\": "))
                .getMessage().contains("tokenizer_config.json: malformed JSON"));
        // No end-of-sequence token: documents cannot be ended; the message says where to name one.
        Tokenizer noEos = load("tokenizer.json", tok);
        e = assertThrows(ModelFileException.class, noEos::endOfDocument);
        assertTrue(e.getMessage().startsWith(noEos.source() + ": no end-of-sequence token") && e.getMessage().contains("tokenizer_config.json"),
                e.getMessage());
    }

    @Test
    void trainedTokenizerRoundTripsThroughTokenizerJson() throws Exception {
        List<String> texts = List.of("the cat sat on the mat\n", "the dog sat on the log\n", "thé café 東京\n");
        ByteLevelBpe bpe = BpeTrainer.train(texts, 280, List.of(TokenizerJson.END_OF_TEXT), n -> { });
        assertEquals(280, bpe.size());
        assertEquals(279, (int) bpe.special().get(TokenizerJson.END_OF_TEXT));
        TokenizerJson.write(bpe, dir.resolve("trained"));
        Tokenizer read = Tokenizer.read(dir.resolve("trained").resolve("tokenizer.json")), loaded = TokenizerJson.load(bpe);
        String s = "the cat ate thé dog<|endoftext|>";
        assertArrayEquals(loaded.encode(s), read.encode(s));
        assertEquals(s, read.decode(read.encode(s), false));
        assertEquals(280, read.size());
        // The learned tokens are the encoding's: " sat" and " the" (Ġ for the space) are frequent enough to be merged whole.
        assertArrayEquals(new int[] {bpe.vocab().get("Ġsat")}, read.encode(" sat"));
        assertArrayEquals(new int[] {bpe.vocab().get("Ġthe")}, read.encode(" the"));
        // tokenizer_config.json names <|endoftext|> both ends; the class keeps ByteLevel's post-processor: nothing added.
        assertEquals(279, read.special().bos());
        assertArrayEquals(new int[] {279}, read.special().eos());
        assertArrayEquals(read.encode(s), read.encodeDocument(s));
    }

    static Path fixtures() throws Exception {
        return Path.of(TokenizerTest.class.getResource("/fixtures/tokenizers/expected.json").toURI()).getParent();
    }

    static int[] ids(JsonObject o, String key) {
        return o.getAsJsonArray(key).asList().stream().mapToInt(e -> e.getAsInt()).toArray();
    }

    @Test
    void byteLevelMatchesIdsHuggingFaceRecorded() throws Exception {
        JsonObject exp = JsonParser.parseString(Files.readString(fixtures().resolve("expected.json"))).getAsJsonObject();
        Tokenizer t = Tokenizer.read(fixtures().resolve("byte-level/tokenizer.json"));
        String text = exp.get("text").getAsString(), special = exp.get("special").getAsString();
        int[] got = t.encode(text + special + text);
        assertArrayEquals(ids(exp, "byte_level"), got);
        assertEquals(text + special + text, t.decode(got, false), "byte-level BPE round-trips any text");
    }

    @Test
    void metaspaceWithByteFallbackMatchesIdsHuggingFaceRecorded() throws Exception {
        JsonObject exp = JsonParser.parseString(Files.readString(fixtures().resolve("expected.json"))).getAsJsonObject();
        Tokenizer t = Tokenizer.read(fixtures().resolve("metaspace/tokenizer.json"));
        String text = exp.get("text").getAsString();
        int[] got = t.encode(text);
        assertArrayEquals(ids(exp, "metaspace"), got);
        assertEquals(text, t.decode(got, false), "byte fallback keeps characters outside the vocabulary");
    }
}
