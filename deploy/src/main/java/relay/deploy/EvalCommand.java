package relay.deploy;

import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import relay.stages.data.Corpus;
import relay.stages.data.InstructionDataset;
import relay.stages.data.Instructions;
import relay.stages.model.LmHead;
import relay.stages.data.PackedDataset;
import relay.stages.io.HfModelDirectory;
import relay.stages.model.Model;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.text.Tokenizer;

@Command(name = "eval", mixinStandardHelpOptions = true,
        description = "Mean loss and perplexity of a model directory (with its tokenizer.json) on a corpus.")
final class EvalCommand implements Callable<Integer> {
    @Mixin
    ModelDirectoryOption modelDirectory;

    @Option(names = "--data", required = true, description = "a text or JSONL corpus (optionally .gz)")
    Path data;

    @Option(names = "--seq", description = "tokens per sequence (default ${DEFAULT-VALUE})")
    int seq = 128;

    @Option(names = "--max-sequences", description = "evaluate at most this many sequences (default ${DEFAULT-VALUE})")
    int maxSequences = 200;

    @Override
    public Integer call() {
        Inputs.require(seq >= 1, "--seq", "≥ 1", seq);
        Inputs.require(maxSequences >= 1, "--max-sequences", "≥ 1", maxSequences);
        Path model = modelDirectory.path();
        int positions = relay.stages.model.ModelConfig.read(model.resolve("config.json")).maxPositions();
        Inputs.require(seq <= positions, "--seq", "at most the model's " + positions + " positions", seq);
        Tokenizer tokenizer = Tokenizer.ofModel(model);
        if (Instructions.holds(data)) return instructions(model, tokenizer);
        tokenizer.endOfDocument();
        int[] tokens = tokens(tokenizer, Corpus.read(data), (long) maxSequences * seq + 1);
        int sequences = Math.min(maxSequences, (tokens.length - 1) / seq);
        if (sequences < 1) throw new IllegalArgumentException(data + ": " + tokens.length + " tokens, too few for one sequence of --seq " + seq);
        try (CpuDevice d = CpuDevice.allCores(); Model m = HfModelDirectory.load(model, d)) {
            double sum = 0;
            for (int i = 0; i < sequences; i++) {
                int[] in = java.util.Arrays.copyOfRange(tokens, i * seq, i * seq + seq);
                int[] tgt = java.util.Arrays.copyOfRange(tokens, i * seq + 1, i * seq + seq + 1);
                sum += m.loss(in, tgt, 1, seq);
            }
            double loss = sum / sequences;
            System.out.printf(Locale.ROOT, "%s on %s: %d sequences of %d tokens%s, loss %.4f, perplexity %.2f%n", model, data,
                    sequences, seq, sequences < maxSequences ? " (all the corpus holds; --max-sequences asked for " + maxSequences + ")" : "",
                    loss, Math.exp(loss));
        }
        return 0;
    }

    /**
     * Instruction data as training reads it, one example to a sequence: the mean loss over every token the loss counts
     * (the answers), in the file's order up to --max-sequences examples.
     */
    private int instructions(Path model, Tokenizer tokenizer) {
        InstructionDataset.Rows rows = InstructionDataset.rows(data, Instructions.read(data), tokenizer, seq);
        int n = Math.min(maxSequences, rows.tokens().length);
        double sum = 0;
        long counted = 0;
        try (CpuDevice d = CpuDevice.allCores(); Model m = HfModelDirectory.load(model, d)) {
            for (int i = 0; i < n; i++) {
                int[] in = java.util.Arrays.copyOf(rows.tokens()[i], seq), tgt = java.util.Arrays.copyOfRange(rows.labels()[i], 1, seq + 1);
                int c = LmHead.counted(tgt);
                if (c == 0) continue;
                sum += m.loss(in, tgt, 1, seq) * c;
                counted += c;
            }
        }
        if (counted == 0) throw new IllegalArgumentException(data + ": no answer token within --seq " + seq + " in the examples evaluated");
        double loss = sum / counted;
        System.out.printf(Locale.ROOT, "%s on %s: %d examples, %d answer tokens counted (prompts masked), loss %.4f, perplexity %.2f%n",
                model, data, n, counted, loss, Math.exp(loss));
        return 0;
    }

    /**
     * The first {@code needed} tokens of the corpus joined as training joins it ({@link PackedDataset#document}); documents
     * are encoded only until they are covered, so a large corpus is not encoded whole.
     */
    static int[] tokens(Tokenizer tokenizer, List<String> docs, long needed) {
        List<int[]> parts = new java.util.ArrayList<>();
        long have = 0;
        for (int i = 0; i < docs.size() && have < needed; i++) {
            int[] p = PackedDataset.document(tokenizer, docs.get(i));
            parts.add(p);
            have += p.length;
        }
        int[] tokens = new int[(int) Math.min(have, needed)];
        int at = 0;
        for (int[] p : parts) {
            int n = Math.min(p.length, tokens.length - at);
            System.arraycopy(p, 0, tokens, at, n);
            at += n;
        }
        return tokens;
    }
}
