package relay.stages.data;

import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import relay.stages.io.ModelFileException;
import relay.stages.text.ChatTemplate;
import relay.stages.text.Tokenizer;
import relay.stages.train.Batch;

/**
 * Instruction examples tokenized as the model reads them, with the loss counting only what the model is to answer:
 * <ul>
 *   <li>a conversation is rendered whole by the model's chat template and tokenized as one text (as
 *   {@code apply_chat_template} tokenizes it); the assistant's turns are the characters each adds to the rendering
 *   of the conversation before it with the generation prompt — the answer and what closes it (an end-of-turn token);</li>
 *   <li>a prompt/completion pair is tokenized as {@code tokenizer(prompt + completion)} followed by the end-of-sequence
 *   token; the completion and that token are counted.</li>
 * </ul>
 * A token that straddles a boundary belongs to the side its tokens share with the shorter text's tokenization.
 *
 * <p>Examples go one to a sequence, padded, or packed: whole examples filling sequences by best-fit decreasing
 * (as TRL's "bfd" packing does), each sequence carrying its tokens' position ids so that every example attends
 * only to itself.
 */
public final class InstructionDataset {
    /**
     * What the encoding kept: examples, tokens counted by the loss and not, examples cut to the sequence length, and
     * the rows (sequences of seq + 1 tokens) they fill.
     */
    public record Stats(int examples, long counted, long masked, int truncated, int rows) {}

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

    /** The examples one to a row, padded, or ({@code packing}) packed into rows with their position ids. */
    public static InstructionDataset of(Path file, List<Instructions.Example> examples, Tokenizer tokenizer, int seq,
                                        boolean packing, double validationFraction, long seed) {
        Rows rows = packing ? packed(file, examples, tokenizer, seq) : rows(file, examples, tokenizer, seq);
        PackedDataset data;
        try {
            data = PackedDataset.padded(rows.tokens(), rows.labels(), rows.positions(), seq, validationFraction, seed);
        } catch (IllegalArgumentException e) {
            throw new ModelFileException(file, e.getMessage(), e);
        }
        return new InstructionDataset(data, rows.stats());
    }

    /**
     * Rows of seq + 1 tokens, the targets the loss counts (IGNORED elsewhere) and, for packed rows, each token's
     * offset within its own example (null when every row is one example).
     */
    public record Rows(int[][] tokens, int[][] labels, int[][] positions, Stats stats) {}

    /** Every example as one row of seq + 1 tokens, padded, in the file's order. */
    public static Rows rows(Path file, List<Instructions.Example> examples, Tokenizer tokenizer, int seq) {
        Cut cut = cut(file, examples, tokenizer, seq);
        int n = examples.size();
        int[][] tokens = new int[n][], labels = new int[n][];
        for (int i = 0; i < n; i++) {
            tokens[i] = row(seq, cut.pad());
            labels[i] = row(seq, Batch.IGNORED);
            System.arraycopy(cut.tokens()[i], 0, tokens[i], 0, cut.tokens()[i].length);
            System.arraycopy(cut.labels()[i], 0, labels[i], 0, cut.labels()[i].length);
        }
        return new Rows(tokens, labels, null, cut.stats(n));
    }

    /**
     * The examples packed whole into rows of seq + 1 tokens by best-fit decreasing: longest first, each into the row
     * it leaves the least room in, a new row when none has room; the rest of a row is padding. A token's position id
     * is its offset in its own example; the padding counts from 0 as an example of its own, so that padding never
     * reads a real example and "an id of 0 starts an example" holds for every token of a row.
     */
    public static Rows packed(Path file, List<Instructions.Example> examples, Tokenizer tokenizer, int seq) {
        Cut cut = cut(file, examples, tokenizer, seq);
        Rows r = pack(cut.tokens(), cut.labels(), cut.pad(), seq);
        return new Rows(r.tokens(), r.labels(), r.positions(), cut.stats(r.tokens().length));
    }

    /** Examples of at most seq + 1 tokens and their labels packed as {@link #packed} says (no stats). */
    static Rows pack(int[][] exampleTokens, int[][] exampleLabels, int pad, int seq) {
        Integer[] order = new Integer[exampleTokens.length];
        for (int i = 0; i < order.length; i++) order[i] = i;
        // Longest first; equal lengths keep the file's order.
        Arrays.sort(order, (a, b) -> Integer.compare(exampleTokens[b].length, exampleTokens[a].length));
        List<List<Integer>> bins = new ArrayList<>();
        List<Integer> used = new ArrayList<>();
        // Rows by the room they have left, so that the best fit (the least room that still holds an example) is one look-up.
        TreeMap<Integer, ArrayDeque<Integer>> byRoom = new TreeMap<>();
        for (int e : order) {
            int length = exampleTokens[e].length;
            Map.Entry<Integer, ArrayDeque<Integer>> fit = byRoom.ceilingEntry(length);
            int bin;
            if (fit == null) {
                bin = bins.size();
                bins.add(new ArrayList<>());
                used.add(0);
            } else {
                bin = fit.getValue().pollFirst();
                if (fit.getValue().isEmpty()) byRoom.remove(fit.getKey());
            }
            bins.get(bin).add(e);
            used.set(bin, used.get(bin) + length);
            int room = seq + 1 - used.get(bin);
            if (room > 0) byRoom.computeIfAbsent(room, r -> new ArrayDeque<>()).addLast(bin);
        }
        int[][] tokens = new int[bins.size()][], labels = new int[bins.size()][], positions = new int[bins.size()][];
        for (int r = 0; r < bins.size(); r++) {
            tokens[r] = row(seq, pad);
            labels[r] = row(seq, Batch.IGNORED);
            positions[r] = new int[seq + 1];
            int at = 0;
            for (int e : bins.get(r)) {
                int[] t = exampleTokens[e];
                System.arraycopy(t, 0, tokens[r], at, t.length);
                System.arraycopy(exampleLabels[e], 0, labels[r], at, t.length);
                for (int k = 0; k < t.length; k++) positions[r][at + k] = k;
                at += t.length;
            }
            for (int k = at; k <= seq; k++) positions[r][k] = k - at;
        }
        return new Rows(tokens, labels, positions, null);
    }

    private static int[] row(int seq, int fill) {
        int[] r = new int[seq + 1];
        Arrays.fill(r, fill);
        return r;
    }

    /**
     * Every example encoded and cut to at most seq + 1 tokens, with its labels: the token where the loss counts it,
     * IGNORED where not and at the example's first token, which nothing of its own precedes.
     */
    private record Cut(int[][] tokens, int[][] labels, int pad, int examples, long counted, long masked, int truncated) {
        Stats stats(int rows) {
            return new Stats(examples, counted, masked, truncated, rows);
        }
    }

    private static Cut cut(Path file, List<Instructions.Example> examples, Tokenizer tokenizer, int seq) {
        ChatTemplate template = examples.get(0) instanceof Instructions.Chat ? ChatTemplate.of(tokenizer) : null;
        int pad = tokenizer.special().pad() >= 0 ? tokenizer.special().pad() : tokenizer.endOfDocument();
        int[][] tokens = new int[examples.size()][], labels = new int[examples.size()][];
        long counted = 0, masked = 0;
        int truncated = 0;
        for (int i = 0; i < examples.size(); i++) {
            Encoded e = encode(examples.get(i), tokenizer, template, file);
            if (e.ids().length > seq + 1) truncated++;
            int n = Math.min(e.ids().length, seq + 1);
            tokens[i] = Arrays.copyOf(e.ids(), n);
            labels[i] = new int[n];
            Arrays.fill(labels[i], Batch.IGNORED);
            for (int t = 1; t < n; t++) {
                if (e.counted()[t]) {
                    labels[i][t] = e.ids()[t];
                    counted++;
                } else {
                    masked++;
                }
            }
        }
        return new Cut(tokens, labels, pad, examples.size(), counted, masked, truncated);
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
            // The conversation through its last message is the whole, already rendered and encoded.
            boolean last = k == m.size() - 1;
            String before = template.render(m.subList(0, k), true), through = last ? whole : template.render(m.subList(0, k + 1), false);
            if (!through.startsWith(before) || !whole.startsWith(through)) {
                throw new ModelFileException(file, "line " + c.line() + ": the chat template does not render a conversation's turns as "
                        + "prefixes of it, so the assistant's tokens cannot be told apart");
            }
            int from = sharedPrefix(ids, tokenizer.encode(before)), to = last ? ids.length : sharedPrefix(ids, tokenizer.encode(through));
            for (int t = from; t < to; t++) counted[t] = true;
        }
        return new Encoded(ids, counted);
    }

    private static Encoded completion(Instructions.Completion c, Tokenizer tokenizer) {
        // Ended once: a tokenizer that adds the end-of-sequence token itself (add_eos_token) has ended it already.
        int[] ids = PackedDataset.document(tokenizer, c.prompt() + c.completion());
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
