package relay.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import relay.stages.data.InstructionDataset;
import relay.stages.data.Instructions;
import relay.stages.io.HfModelDirectory;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.text.BpeTrainer;
import relay.stages.text.Tokenizer;
import relay.stages.text.TokenizerJson;
import relay.stages.train.Batch;

/**
 * Fine-tuning one's own LLaMA-shaped model directory on chat data: the chat template decides what the model is shown,
 * only the assistant's turns are counted by the loss, and an export of the run evaluates to the checkpoint's loss.
 */
class ChatFineTuneTest {
    /** A ChatML template (Qwen2's shape, without its system default). */
    static final String CHATML = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
            + "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    @TempDir
    Path dir;

    Path model;
    Path chats;

    @BeforeEach
    void files() throws Exception {
        List<String> lines = new ArrayList<>();
        List<String> texts = new ArrayList<>();
        for (int i = 0; i < 24; i++) {
            String q = "What is " + i + " plus " + (i % 5) + "?", a = "It is " + (i + i % 5) + ", said the teacher.";
            texts.add(q + " " + a);
            lines.add("{\"messages\": [{\"role\": \"user\", \"content\": \"" + q + "\"}, {\"role\": \"assistant\", \"content\": \"" + a + "\"}]}");
        }
        chats = Files.write(dir.resolve("chats.jsonl"), lines);
        model = dir.resolve("my-model");
        try (CpuDevice d = new CpuDevice("init", 1); Model m = Model.initialize(ModelConfig.named("llama-tiny"), d, 7)) {
            HfModelDirectory.save(m, model);
        }
        TokenizerJson.write(BpeTrainer.train(texts, 400, List.of("<|endoftext|>", "<|im_start|>", "<|im_end|>"), n -> { }), model);
        com.google.gson.JsonObject config = new com.google.gson.JsonObject();
        config.addProperty("eos_token", "<|im_end|>");
        config.add("bos_token", com.google.gson.JsonNull.INSTANCE);
        config.addProperty("chat_template", CHATML);
        Files.writeString(model.resolve("tokenizer_config.json"), config.toString());
    }

    /** The counted targets are exactly the answer and the token that closes the turn; the prompt's are IGNORED. */
    @Test
    void onlyTheAssistantsTokensAreCounted() {
        Tokenizer t = Tokenizer.ofModel(model);
        InstructionDataset.Rows rows = InstructionDataset.rows(chats, Instructions.read(chats), t, 64);
        int[] tokens = rows.tokens()[3], labels = rows.labels()[3];
        List<Integer> counted = new ArrayList<>(), masked = new ArrayList<>();
        for (int i = 1; i < labels.length; i++) {
            if (labels[i] == Batch.IGNORED) masked.add(tokens[i]);
            else counted.add(labels[i]);
            if (labels[i] != Batch.IGNORED) assertEquals(tokens[i], labels[i], "a counted target is the token itself");
        }
        assertEquals("It is 6, said the teacher.<|im_end|>\n", t.decode(counted.stream().mapToInt(Integer::intValue).toArray(), false));
        String prompt = t.decode(masked.stream().mapToInt(Integer::intValue).toArray(), false);
        assertTrue(prompt.startsWith("user\nWhat is 3 plus 3?<|im_end|>\n<|im_start|>assistant\n"), prompt);
    }

    /** The loss of a row is the mean over the answer's positions alone: each position's loss taken on its own, then averaged. */
    @Test
    void thePromptsLossIsNotCounted() {
        Tokenizer t = Tokenizer.ofModel(model);
        int seq = 48;
        InstructionDataset.Rows rows = InstructionDataset.rows(chats, Instructions.read(chats), t, seq);
        int[] in = Arrays.copyOf(rows.tokens()[5], seq), tgt = Arrays.copyOfRange(rows.labels()[5], 1, seq + 1);
        try (CpuDevice d = new CpuDevice("loss", 1); Model m = HfModelDirectory.load(model, d)) {
            double answers = 0, everything = 0;
            int nAnswers = 0, nAll = 0;
            int[] all = Arrays.copyOfRange(rows.tokens()[5], 1, seq + 1);
            for (int p = 0; p < seq; p++) {
                int[] one = new int[seq];
                Arrays.fill(one, Batch.IGNORED);
                one[p] = all[p];
                double l = m.loss(in, one, 1, seq);
                everything += l;
                nAll++;
                if (tgt[p] != Batch.IGNORED) {
                    answers += l;
                    nAnswers++;
                }
            }
            assertTrue(nAnswers > 0 && nAnswers < nAll);
            assertEquals(answers / nAnswers, m.loss(in, tgt, 1, seq), 1e-5);
            assertNotEquals(everything / nAll, m.loss(in, tgt, 1, seq), 1e-3, "the prompt's positions would change the mean");
        }
    }



    @Test
    void trainExportEvalAndChat() throws Exception {
        Path out = dir.resolve("runs");
        String trained = Cli.output(0, "train", "--model", model.toString(), "--data", chats.toString(), "--steps", "3", "--out", out.toString(),
                "batch=2", "seq=48", "microbatches=2", "eval-every=3", "checkpoint-every=3", "trace-steps=0", "eval-sequences=2",
                "validation-fraction=0.1");
        assertTrue(trained.contains("tokens counted by the loss") && trained.contains("prompt tokens masked"), trained);
        Path runDir;
        try (Stream<Path> s = Files.list(out)) {
            runDir = s.findFirst().orElseThrow();
        }
        Path exported = dir.resolve("exported");
        Cli.output(0, "export", runDir.toString(), "--to", exported.toString());
        assertEquals(Files.readString(model.resolve("tokenizer_config.json")), Files.readString(exported.resolve("tokenizer_config.json")),
                "the tokenizer's files as the model had them");
        String before = Cli.output(0, "eval", "--model", runDir.toString(), "--data", chats.toString(), "--seq", "48");
        String after = Cli.output(0, "eval", "--model", exported.toString(), "--data", chats.toString(), "--seq", "48");
        assertTrue(before.contains("answer tokens counted"), before);
        assertEquals(Cli.loss(before), Cli.loss(after), 0.0, after);
        String original = Cli.output(0, "eval", "--model", model.toString(), "--data", chats.toString(), "--seq", "48");
        assertTrue(Cli.loss(before) < Cli.loss(original), "three steps of training lowered the loss on the answers: " + original + before);
        Cli.output(0, "generate", "--model", exported.toString(), "--chat", "--prompt", "What is 2 plus 2?", "--max-tokens", "4", "--temperature", "0");
    }

    /** relay train packing=true: the chats packed several to a sequence, the run saying into how many. */
    @Test
    void trainOnPackedChats() {
        String trained = Cli.output(0, "train", "--model", model.toString(), "--data", chats.toString(), "--steps", "2", "--out",
                dir.resolve("packed").toString(), "batch=2", "seq=96", "microbatches=2", "eval-every=2", "checkpoint-every=2",
                "trace-steps=0", "eval-sequences=2", "validation-fraction=0.1", "packing=true");
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("24 examples, packed into (\\d+) sequences of 96 \\((\\d+) training, (\\d+) validation\\)").matcher(trained);
        assertTrue(m.find(), trained);
        int rows = Integer.parseInt(m.group(1));
        assertTrue(rows < 24, "several examples to a sequence: " + rows);
        assertEquals(rows, Integer.parseInt(m.group(2)) + Integer.parseInt(m.group(3)));
    }

    /**
     * The answers' loss over the whole file is the same whether the examples are padded one to a sequence or packed
     * with their position ids (what relay eval computes, padded, is what a packed run sees).
     */
    @Test
    void packedAndPaddedExamplesHaveTheSameLoss() {
        Tokenizer t = Tokenizer.ofModel(model);
        int seq = 96;
        List<Instructions.Example> examples = Instructions.read(chats);
        InstructionDataset.Rows padded = InstructionDataset.rows(chats, examples, t, seq), packed = InstructionDataset.packed(chats, examples, t, seq);
        assertTrue(packed.tokens().length < padded.tokens().length);
        assertEquals(padded.stats().counted(), packed.stats().counted());
        try (CpuDevice d = new CpuDevice("packed", 1); Model m = HfModelDirectory.load(model, d)) {
            assertEquals(summedLoss(m, padded, seq), summedLoss(m, packed, seq), 1e-4 * summedLoss(m, padded, seq));
        }
    }

    /** Σ over the rows of mean loss × counted targets: the summed loss of every counted target. */
    private static double summedLoss(Model m, InstructionDataset.Rows rows, int seq) {
        double sum = 0;
        for (int r = 0; r < rows.tokens().length; r++) {
            int[] in = Arrays.copyOf(rows.tokens()[r], seq), tgt = Arrays.copyOfRange(rows.labels()[r], 1, seq + 1);
            int[] pos = rows.positions() == null ? null : Arrays.copyOf(rows.positions()[r], seq);
            sum += m.loss(in, tgt, pos, 1, seq) * Arrays.stream(tgt).filter(x -> x != Batch.IGNORED).count();
        }
        return sum;
    }

    @Test
    void conversationsNeedAChatTemplateAndAModelTokenizer() throws Exception {
        Files.writeString(model.resolve("tokenizer_config.json"), "{\"eos_token\": \"<|im_end|>\"}");
        String e = Cli.output(2, "train", "--model", model.toString(), "--data", chats.toString(), "--steps", "1", "--out", dir.resolve("r").toString(),
                "batch=2", "seq=48", "microbatches=2");
        assertTrue(e.contains("has no chat template"), e);
        e = Cli.output(2, "train", "--model", "llama-tiny", "--data", chats.toString(), "--steps", "1", "--out", dir.resolve("r").toString(),
                "batch=2", "seq=48", "microbatches=2");
        assertTrue(e.contains("chats.jsonl: instruction data needs a model with its own tokenizer.json"), e);
    }
}
