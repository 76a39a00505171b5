package relay.stages.data;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import relay.stages.text.Tokenizer;
import relay.stages.train.Batch;

/**
 * Documents tokenized into one stream (each ended by an end-of-sequence token) and cut into sequences of
 * {@code seq + 1} tokens (inputs and next-token targets). A seeded shuffle sets a fraction of the sequences
 * aside for validation; the rest are served in a fresh seeded order every epoch. The position — epoch and
 * index — is all a resumed run needs to continue with the very next batch.
 */
public final class PackedDataset {
    private final int[] tokens;
    /** The target of each token's predecessor, where it differs from the token itself (instruction data); else null. */
    private final int[] labels;
    /** Each token's offset within its own example where sequences hold packed examples; else null. */
    private final int[] positions;
    /** Where sequence i starts: i·seq when packed (a sequence's last target is the next one's first input), i·(seq + 1) when padded. */
    private final int stride;
    private final int seq;
    private final int[] train;
    private final int[] validation;
    private final long seed;
    private int epoch;
    private int index;
    private int[] order;

    public record Position(int epoch, int index) {}

    public PackedDataset(int[] tokens, int seq, double validationFraction, long seed) {
        this(tokens, null, null, seq, seq, (tokens.length - 1) / seq, validationFraction, seed);
    }

    /**
     * Instruction examples in rows of their own: row i of {@code tokens} and {@code labels} holds seq + 1 tokens and
     * the targets the loss counts for them ({@link relay.stages.train.Batch#IGNORED} for a prompt's tokens and
     * padding), and of {@code positions} (null: one example to a row) each token's offset within its own example.
     */
    public static PackedDataset padded(int[][] tokens, int[][] labels, int[][] positions, int seq, double validationFraction, long seed) {
        int[] t = new int[tokens.length * (seq + 1)], l = new int[t.length], p = positions == null ? null : new int[t.length];
        for (int i = 0; i < tokens.length; i++) {
            System.arraycopy(tokens[i], 0, t, i * (seq + 1), seq + 1);
            System.arraycopy(labels[i], 0, l, i * (seq + 1), seq + 1);
            if (p != null) System.arraycopy(positions[i], 0, p, i * (seq + 1), seq + 1);
        }
        return new PackedDataset(t, l, p, seq + 1, seq, tokens.length, validationFraction, seed);
    }

    private PackedDataset(int[] tokens, int[] labels, int[] positions, int stride, int seq, int sequences, double validationFraction,
                          long seed) {
        if (sequences < 2) {
            throw new IllegalArgumentException(labels == null ? "the corpus gives " + tokens.length + " tokens: too few for two sequences of " + seq
                    : sequences + " sequence(s) of examples: too few for a training and a validation one");
        }
        this.tokens = tokens;
        this.labels = labels;
        this.positions = positions;
        this.stride = stride;
        this.seq = seq;
        this.seed = seed;
        int[] all = permutation(sequences, new SplittableRandom(seed));
        int nVal = Math.max(1, (int) Math.round(sequences * validationFraction));
        this.validation = Arrays.copyOfRange(all, 0, nVal);
        this.train = Arrays.copyOfRange(all, nVal, sequences);
        this.order = epochOrder(0);
    }

    /**
     * Encodes the documents as {@link #document} does — in parallel on every core, in order in the result — and
     * packs them. {@code progress} hears the percentage of documents encoded, every 10%.
     */
    public static PackedDataset of(List<String> documents, Tokenizer tokenizer, int seq, double validationFraction, long seed,
                                   java.util.function.IntConsumer progress) {
        tokenizer.endOfDocument();
        int[][] parts = new int[documents.size()][];
        java.util.concurrent.atomic.AtomicInteger done = new java.util.concurrent.atomic.AtomicInteger();
        java.util.stream.IntStream.range(0, parts.length).parallel().forEach(i -> {
            parts[i] = document(tokenizer, documents.get(i));
            int d = done.incrementAndGet();
            if (d * 10L / parts.length != (d - 1) * 10L / parts.length) progress.accept((int) (d * 100L / parts.length));
        });
        long total = 0;
        for (int[] p : parts) total += p.length;
        if (total > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("the corpus encodes to " + total + " tokens, more than one dataset holds (2^31); split it");
        }
        int[] stream = new int[(int) total];
        int at = 0;
        for (int[] p : parts) {
            System.arraycopy(p, 0, stream, at, p.length);
            at += p.length;
        }
        return new PackedDataset(stream, seq, validationFraction, seed);
    }

    /**
     * A document as a model is trained on it, one after another: encoded the model's way (Hugging Face's
     * {@code tokenizer(text)}, with the BOS or EOS its post-processor adds), then ended by the tokenizer's first
     * end-of-sequence id, unless the post-processor has already ended it so.
     */
    public static int[] document(Tokenizer tokenizer, String text) {
        int[] ids = tokenizer.encodeDocument(text);
        int end = tokenizer.endOfDocument();
        if (ids.length > 0 && ids[ids.length - 1] == end) return ids;
        int[] out = Arrays.copyOf(ids, ids.length + 1);
        out[ids.length] = end;
        return out;
    }

    private static int[] permutation(int n, SplittableRandom rng) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = rng.nextInt(i + 1), t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }

    private int[] epochOrder(int e) {
        int[] p = permutation(train.length, new SplittableRandom(seed * 31 + e + 1));
        for (int i = 0; i < p.length; i++) p[i] = train[p[i]];
        return p;
    }

    public int tokens() {
        return tokens.length;
    }

    /** Tokens per sequence. */
    public int seq() {
        return seq;
    }

    public int trainSequences() {
        return train.length;
    }

    public int validationSequences() {
        return validation.length;
    }

    public Position position() {
        return new Position(epoch, index);
    }

    public void seek(Position p) {
        epoch = p.epoch();
        index = p.index();
        order = epochOrder(epoch);
    }

    /** The next training batch of {@code batch} sequences, moving to a new epoch when one runs out. */
    public Batch next(int batch) {
        int[] in = new int[batch * seq], out = new int[batch * seq], pos = positions == null ? null : new int[batch * seq];
        for (int b = 0; b < batch; b++) {
            if (index == order.length) {
                epoch++;
                index = 0;
                order = epochOrder(epoch);
            }
            copy(order[index++], b, in, out, pos);
        }
        return new Batch(in, out, batch, seq, pos);
    }

    /** Validation batches, in a fixed order, covering up to {@code maxSequences}. */
    public List<Batch> validation(int batch, int maxSequences) {
        int n = Math.min(maxSequences, validation.length) / batch * batch;
        java.util.ArrayList<Batch> out = new java.util.ArrayList<>();
        for (int start = 0; start < n; start += batch) {
            int[] in = new int[batch * seq], tgt = new int[batch * seq], pos = positions == null ? null : new int[batch * seq];
            for (int b = 0; b < batch; b++) copy(validation[start + b], b, in, tgt, pos);
            out.add(new Batch(in, tgt, batch, seq, pos));
        }
        return out;
    }

    private void copy(int sequence, int row, int[] in, int[] out, int[] pos) {
        int from = sequence * stride;
        System.arraycopy(tokens, from, in, row * seq, seq);
        System.arraycopy(labels != null ? labels : tokens, from + 1, out, row * seq, seq);
        if (pos != null) System.arraycopy(positions, from, pos, row * seq, seq);
    }
}
