package relay.stages.data;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import relay.stages.io.ModelFileException;
import relay.stages.text.ChatTemplate;
import relay.stages.text.Tokenizer;
import relay.stages.train.Batch;

/**
 * Instruction examples tokenized as the model reads them, one to a sequence, padded, with the loss counting only
 * what the model is to answer:
 * <ul>
 *   <li>a conversation is rendered whole by the model's chat template and tokenized as one text (as
 *   {@code apply_chat_template} tokenizes it); the assistant's turns are the characters each adds to the rendering
 *   of the conversation before it with the generation prompt — the answer and what closes it (an end-of-turn token);</li>
 *   <li>a prompt/completion pair is tokenized as {@code tokenizer(prompt + completion)} followed by the end-of-sequence
 *   token; the completion and that token are counted.</li>
 * </ul>
 * A token that straddles a boundary belongs to the side its tokens share with the shorter text's tokenization.
 */
public final class InstructionDataset {
    /** What the encoding kept: examples, tokens counted by the loss and not, and examples cut to the sequence length. */
    public record Stats(int examples, long counted, long masked, int truncated) {}

    private final PackedDataset data;
    private final Stats stats;

    private InstructionDataset(PackedDataset data, Stats stats) {
        this.data = data;
        this.stats = stats;
    }

    public PackedDataset data() {
        return data;
    }

    public Stats stats() {
        return stats;
    }

    /** One example as ids and, for each id, whether the loss counts it as a target. */
    record Encoded(int[] ids, boolean[] counted) {}

    public static InstructionDataset of(Path file, List<Instructions.Example> examples, Tokenizer tokenizer, int seq,
                                        double validationFraction, long seed) {
        Rows rows = rows(file, examples, tokenizer, seq);
        PackedDataset data;
        try {
            data = PackedDataset.padded(rows.tokens(), rows.labels(), seq, validationFraction, seed);
        } catch (IllegalArgumentException e) {
            throw new ModelFileException(file, e.getMessage(), e);
        }
        return new InstructionDataset(data, rows.stats());
    }

    /** Every example as one row of seq + 1 tokens and the targets its loss counts (IGNORED elsewhere), in the file's order. */
    public record Rows(int[][] tokens, int[][] labels, Stats stats) {}

    public static Rows rows(Path file, List<Instructions.Example> examples, Tokenizer tokenizer, int seq) {
        ChatTemplate template = examples.get(0) instanceof Instructions.Chat ? ChatTemplate.of(tokenizer) : null;
        int pad = tokenizer.special().pad() >= 0 ? tokenizer.special().pad() : tokenizer.endOfDocument();
        int[][] tokens = new int[examples.size()][], labels = new int[examples.size()][];
        long counted = 0, masked = 0;
        int truncated = 0;
        for (int i = 0; i < examples.size(); i++) {
            Encoded e = encode(examples.get(i), tokenizer, template, file);
            if (e.ids().length > seq + 1) truncated++;
            tokens[i] = new int[seq + 1];
            labels[i] = new int[seq + 1];
            Arrays.fill(tokens[i], pad);
            Arrays.fill(labels[i], Batch.IGNORED);
            int n = Math.min(e.ids().length, seq + 1);
            for (int t = 0; t < n; t++) {
                tokens[i][t] = e.ids()[t];
                // Position 0 is never a target: nothing precedes it.
                if (t > 0 && e.counted()[t]) {
                    labels[i][t] = e.ids()[t];
                    counted++;
                } else if (t > 0) {
                    masked++;
                }
            }
        }
        return new Rows(tokens, labels, new Stats(examples.size(), counted, masked, truncated));
    }

    static Encoded encode(Instructions.Example example, Tokenizer tokenizer, ChatTemplate template, Path file) {
        return example instanceof Instructions.Chat c ? chat(c, tokenizer, template, file)
                : completion((Instructions.Completion) example, tokenizer);
    }

    private static Encoded chat(Instructions.Chat c, Tokenizer tokenizer, ChatTemplate template, Path file) {
        List<ChatTemplate.Message> m = c.messages();
        String whole = template.render(m, false);
        int[] ids = tokenizer.encode(whole);
        boolean[] counted = new boolean[ids.length];
        for (int k = 0; k < m.size(); k++) {
            if (!m.get(k).role().equals("assistant")) continue;
            String before = template.render(m.subList(0, k), true), through = template.render(m.subList(0, k + 1), false);
            if (!through.startsWith(before) || !whole.startsWith(through)) {
                throw new ModelFileException(file, "line " + c.line() + ": the chat template does not render a conversation's turns as "
                        + "prefixes of it, so the assistant's tokens cannot be told apart");
            }
            int from = sharedPrefix(ids, tokenizer.encode(before)), to = sharedPrefix(ids, tokenizer.encode(through));
            for (int t = from; t < to; t++) counted[t] = true;
        }
        return new Encoded(ids, counted);
    }

    private static Encoded completion(Instructions.Completion c, Tokenizer tokenizer) {
        int[] text = tokenizer.encodeDocument(c.prompt() + c.completion());
        int[] ids = Arrays.copyOf(text, text.length + 1);
        ids[text.length] = tokenizer.endOfDocument();
        boolean[] counted = new boolean[ids.length];
        for (int t = sharedPrefix(ids, tokenizer.encodeDocument(c.prompt())); t < ids.length; t++) counted[t] = true;
        return new Encoded(ids, counted);
    }

    /** How many leading ids two encodings share. */
    private static int sharedPrefix(int[] a, int[] b) {
        int n = 0;
        while (n < a.length && n < b.length && a[n] == b[n]) n++;
        return n;
    }
}
