package relay.stages.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import relay.stages.io.ModelFileException;
import relay.stages.text.BpeTrainer;
import relay.stages.text.Tokenizer;
import relay.stages.text.TokenizerFiles;
import relay.stages.text.TokenizerJson;
import relay.stages.train.Batch;

class DataTest {
    @TempDir
    Path dir;

    static int[] stream(int n) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) t[i] = i;
        return t;
    }

    @Test
    void targetsAreTheNextTokensAndValidationIsHeldOut() {
        PackedDataset d = new PackedDataset(stream(1001), 10, 0.1, 3);
        assertEquals(100, d.trainSequences() + d.validationSequences());
        assertEquals(10, d.validationSequences());
        Set<Integer> val = new HashSet<>();
        for (Batch b : d.validation(1, 100)) val.add(b.inputs()[0] / 10);
        Set<Integer> seen = new HashSet<>();
        for (int i = 0; i < d.trainSequences(); i++) {
            Batch b = d.next(1);
            for (int k = 0; k < 10; k++) assertEquals(b.inputs()[k] + 1, b.targets()[k]);
            seen.add(b.inputs()[0] / 10);
        }
        assertEquals(90, seen.size(), "an epoch serves every training sequence once");
        seen.retainAll(val);
        assertTrue(seen.isEmpty(), "no validation sequence is trained on");
    }

    /** Documents encoded in parallel (the library's tokenizer shared by every thread) land in order, as one after another would. */
    @Test
    void documentsAreEncodedInOrderWhateverTheThreads() {
        List<String> docs = new java.util.ArrayList<>();
        for (int i = 0; i < 3000; i++) docs.add("verse " + i + ": and it was so" + " amen".repeat(i % 4));
        Tokenizer t = TokenizerJson.load(BpeTrainer.train(docs, 300, List.of(TokenizerJson.END_OF_TEXT), n -> { }));
        java.util.List<Integer> want = new java.util.ArrayList<>();
        for (String d : docs) {
            for (int id : t.encode(d)) want.add(id);
            want.add(299);
        }
        List<Integer> percents = new java.util.concurrent.CopyOnWriteArrayList<>();
        int seq = (want.size() - 1) / 2;
        PackedDataset packed = PackedDataset.of(docs, t, seq, 0.4, 1, percents::add);
        assertEquals(want.size(), packed.tokens());
        // Two sequences, one held out: together they are the stream's first 2·seq tokens.
        int[] expected = want.stream().mapToInt(Integer::intValue).toArray();
        int[] held = packed.validation(1, 1).get(0).inputs(), trained = packed.next(1).inputs();
        int[] first = java.util.Arrays.copyOfRange(expected, 0, seq), second = java.util.Arrays.copyOfRange(expected, seq, 2 * seq);
        assertTrue(java.util.Arrays.equals(held, first) && java.util.Arrays.equals(trained, second)
                || java.util.Arrays.equals(held, second) && java.util.Arrays.equals(trained, first), "the stream in order");
        assertEquals(10, percents.size(), "progress every 10%: " + percents);
        assertTrue(percents.contains(100));
    }

    /**
     * Documents are joined the model's way: each as {@code tokenizer(text)} gives it (here a Llama template's &lt;s&gt;
     * first), then the first end-of-sequence id.
     */
    @Test
    void documentsAreJoinedWithTheModelsOwnBosAndEos() throws Exception {
        // llama2(): "hi" → ▁hi (9), "hi hé" → ▁hi ▁h <0xC3> <0xA9> (9 8 3 4); <s> 1 before each, </s> 2 after.
        Tokenizer t = Tokenizer.read(TokenizerFiles.write(dir, "tokenizer.json", TokenizerFiles.llama2(), "tokenizer_config.json",
                "{\"tokenizer_class\": \"LlamaTokenizerFast\", \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}"));
        assertArrayEquals(new int[] {1, 9, 2}, PackedDataset.document(t, "hi"));
        // The stream 1 9 2 1 9 8 3 4 2 (9 tokens) holds two sequences of 4 (and their next tokens): 1 9 2 1 and 9 8 3 4.
        PackedDataset d = PackedDataset.of(List.of("hi", "hi hé"), t, 4, 0.5, 3, p -> { });
        assertEquals(9, d.tokens());
        java.util.Set<List<Integer>> seen = new java.util.HashSet<>();
        for (int[] s : List.of(d.validation(1, 1).get(0).inputs(), d.next(1).inputs())) {
            seen.add(java.util.Arrays.stream(s).boxed().toList());
        }
        assertEquals(java.util.Set.of(List.of(1, 9, 2, 1), List.of(9, 8, 3, 4)), seen);
        // With add_eos_token the template has ended each document already: no second </s>.
        Tokenizer eosAdded = Tokenizer.read(TokenizerFiles.write(dir.resolve("eos"), "tokenizer.json", TokenizerFiles.llama2(),
                "tokenizer_config.json", "{\"tokenizer_class\": \"LlamaTokenizer\", \"add_eos_token\": true}"));
        assertArrayEquals(new int[] {1, 9, 2}, PackedDataset.document(eosAdded, "hi"));
        // A prompt and completion likewise, the completion and its one </s> counted.
        InstructionDataset.Encoded pair = InstructionDataset.encode(new Instructions.Completion(1, "h", "i"), eosAdded, null, dir);
        assertEquals(2, pair.ids()[pair.ids().length - 1]);
        assertTrue(pair.ids()[pair.ids().length - 2] != 2, "one </s>: " + java.util.Arrays.toString(pair.ids()));
        assertFalse(pair.counted()[0], "the prompt's <s> is not counted");
        assertTrue(pair.counted()[pair.ids().length - 1], "the </s> is");
        // No end-of-sequence token known: refused before anything is encoded, naming where to give one.
        Tokenizer none = Tokenizer.read(TokenizerFiles.write(dir.resolve("none"), "tokenizer.json", TokenizerFiles.llama2()));
        assertTrue(assertThrows(ModelFileException.class, () -> PackedDataset.of(List.of("hi"), none, 4, 0.5, 3, p -> { }))
                .getMessage().contains("eos_token"));
    }

    /** An example of n tokens first·10, first·10 + 1, …: its first token no target, the rest counted but for {@code masked}. */
    private static int[][] example(int first, int n, int masked) {
        int[] t = new int[n], l = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = first * 10 + i;
            l[i] = i == 0 || i == masked ? Batch.IGNORED : t[i];
        }
        return new int[][] {t, l};
    }

    /**
     * Best-fit decreasing by hand, rows of seq + 1 = 10 tokens, examples of 4, 7, 3, 6, 2, 5 and 10 tokens:
     * 10 fills a row; 7 opens one (room 3); 6 fits nowhere (room 4); 5 neither (room 5); 4 fits the room of 4 best,
     * filling it; 3 the room of 3; 2 the room of 5, leaving 3 of padding.
     */
    @Test
    void bestFitPacksWholeExamplesWithTheirPositions() {
        int[] lengths = {4, 7, 3, 6, 2, 5, 10};
        int[][] tokens = new int[lengths.length][], labels = new int[lengths.length][];
        for (int e = 0; e < lengths.length; e++) {
            int[][] x = example(e + 1, lengths[e], e == 1 ? 2 : -1);
            tokens[e] = x[0];
            labels[e] = x[1];
        }
        InstructionDataset.Rows rows = InstructionDataset.pack(tokens, labels, 0, 9);
        int I = Batch.IGNORED;
        assertArrayEquals(new int[][] {
                {70, 71, 72, 73, 74, 75, 76, 77, 78, 79},
                {20, 21, 22, 23, 24, 25, 26, 30, 31, 32},
                {40, 41, 42, 43, 44, 45, 10, 11, 12, 13},
                {60, 61, 62, 63, 64, 50, 51, 0, 0, 0}}, rows.tokens());
        assertArrayEquals(new int[][] {
                {I, 71, 72, 73, 74, 75, 76, 77, 78, 79},
                {I, 21, I, 23, 24, 25, 26, I, 31, 32},
                {I, 41, 42, 43, 44, 45, I, 11, 12, 13},
                {I, 61, 62, 63, 64, I, 51, I, I, I}}, rows.labels());
        assertArrayEquals(new int[][] {
                {0, 1, 2, 3, 4, 5, 6, 7, 8, 9},
                {0, 1, 2, 3, 4, 5, 6, 0, 1, 2},
                {0, 1, 2, 3, 4, 5, 0, 1, 2, 3},
                {0, 1, 2, 3, 4, 0, 1, 0, 1, 2}}, rows.positions());
        // Served as batches: the first seq tokens and their ids, the next tokens' labels as targets.
        PackedDataset d = PackedDataset.padded(rows.tokens(), rows.labels(), rows.positions(), 9, 0.25, 3);
        assertEquals(3, d.trainSequences());
        List<Batch> served = new java.util.ArrayList<>(d.validation(1, 1));
        for (int i = 0; i < 3; i++) served.add(d.next(1));
        assertEquals(Set.of("[0, 1, 2, 3, 4, 5, 6, 7, 8]", "[0, 1, 2, 3, 4, 5, 6, 0, 1]", "[0, 1, 2, 3, 4, 5, 0, 1, 2]",
                "[0, 1, 2, 3, 4, 0, 1, 0, 1]"), served.stream().map(b -> java.util.Arrays.toString(b.positions()))
                .collect(java.util.stream.Collectors.toSet()));
        Batch last = served.stream().filter(b -> b.inputs()[0] == 60).findFirst().orElseThrow();
        assertArrayEquals(new int[] {60, 61, 62, 63, 64, 50, 51, 0, 0}, last.inputs());
        assertArrayEquals(new int[] {61, 62, 63, 64, I, 51, I, I, I}, last.targets(), "the next example's first token is no target");
    }

    @Test
    void aResumedPositionContinuesWithTheSameBatches() {
        PackedDataset a = new PackedDataset(stream(2001), 8, 0.05, 7), b = new PackedDataset(stream(2001), 8, 0.05, 7);
        for (int i = 0; i < 300; i++) a.next(2);
        PackedDataset.Position p = a.position();
        assertTrue(p.epoch() >= 2, "crossed epochs: " + p);
        b.seek(p);
        for (int i = 0; i < 50; i++) assertArrayEquals(a.next(2).inputs(), b.next(2).inputs());
    }

    @Test
    void corporaAreReadAsTextOrJsonlGzippedOrNot() throws Exception {
        Path txt = dir.resolve("c.txt");
        Files.writeString(txt, "first line\n\nsecond line\n");
        assertEquals(List.of("first line", "second line"), Corpus.read(txt));
        Path gz = dir.resolve("c.jsonl.gz");
        try (OutputStream o = new GZIPOutputStream(Files.newOutputStream(gz))) {
            o.write("{\"text\": \"héllo\"}\n{\"text\": \"world\", \"id\": 2}\n".getBytes(StandardCharsets.UTF_8));
        }
        assertEquals(List.of("héllo", "world"), Corpus.read(gz));
    }

    @Test
    void badCorporaNameTheFileAndTheProblem() throws Exception {
        Path empty = dir.resolve("empty.txt");
        Files.writeString(empty, "\n  \n");
        assertTrue(assertThrows(ModelFileException.class, () -> Corpus.read(empty)).getMessage().equals(empty + ": the corpus holds no text"));
        Path jsonl = dir.resolve("bad.jsonl");
        Files.writeString(jsonl, "{\"text\": \"ok\"}\n{\"body\": \"no text\"}\n");
        assertTrue(assertThrows(ModelFileException.class, () -> Corpus.read(jsonl)).getMessage().contains("line 2 has no string field 'text'"));
        Files.writeString(jsonl, "{\"text\": \"ok\"}\nnot json\n");
        assertTrue(assertThrows(ModelFileException.class, () -> Corpus.read(jsonl)).getMessage().contains("line 2 is not JSON"));
        Path missing = dir.resolve("missing.txt");
        assertTrue(assertThrows(ModelFileException.class, () -> Corpus.read(missing)).getMessage().contains("no such corpus file"));
        Path notGzip = dir.resolve("fake.txt.gz");
        Files.writeString(notGzip, "plain");
        assertTrue(assertThrows(ModelFileException.class, () -> Corpus.read(notGzip)).getMessage().contains("cannot read the corpus"));
    }

    /** Text that is not UTF-8, or binary data, is refused with the byte offset of the first bad byte, not read as U+FFFD. */
    @Test
    void onlyUtf8TextIsACorpusAndTheOffsetOfABadByteIsGiven() throws Exception {
        Path latin1 = dir.resolve("latin1.txt");
        Files.write(latin1, "first line\ncaf\u00e9 au lait\n".getBytes(StandardCharsets.ISO_8859_1));
        assertEquals(latin1 + ": not UTF-8 text: invalid byte 0xE9 at byte offset 14 (a corpus must be UTF-8 text or JSONL)",
                assertThrows(ModelFileException.class, () -> Corpus.read(latin1)).getMessage());
        Path binary = dir.resolve("weights.bin");
        Files.write(binary, new byte[] {'a', 'b', '\n', 'c', 0, 1, 2});
        assertEquals(binary + ": binary data, not text: a NUL byte at byte offset 4",
                assertThrows(ModelFileException.class, () -> Corpus.read(binary)).getMessage());
        Path gz = dir.resolve("c.txt.gz");
        try (OutputStream o = new GZIPOutputStream(Files.newOutputStream(gz))) {
            o.write(new byte[] {'o', 'k', '\n', (byte) 0xC3, '('});
        }
        assertTrue(assertThrows(ModelFileException.class, () -> Corpus.read(gz)).getMessage()
                .endsWith("invalid byte 0xC3 at byte offset 3 of its decompressed text (a corpus must be UTF-8 text or JSONL)"));
        Path crlf = dir.resolve("crlf.txt");
        Files.write(crlf, "\uFEFFone\r\ntwo \u00e9\r\n".getBytes(StandardCharsets.UTF_8));
        assertEquals(List.of("one", "two \u00e9"), Corpus.read(crlf), "a byte-order mark and CR LF endings are not text");
    }
}
