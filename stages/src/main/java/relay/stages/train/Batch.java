package relay.stages.train;

/**
 * One microbatch: batch sequences of seq tokens, row-major, and the next-token targets. A target of
 * {@link #IGNORED} (any negative one) is not counted in the loss: a prompt's tokens, or padding.
 *
 * <p>Sequences may hold several examples packed one after another: {@code positions} then gives each input
 * token's offset within its own example (0, 1, 2, … starting again at each example), and a token attends only
 * to the tokens of its example. Null: each sequence is one example (positions 0 … seq − 1).
 */
public record Batch(int[] inputs, int[] targets, int batch, int seq, int[] positions) {
    /** The target of a position the loss skips (Hugging Face's ignore index). */
    public static final int IGNORED = -100;

    public Batch {
        if (inputs.length != batch * seq || targets.length != batch * seq) {
            throw new IllegalArgumentException("a batch of " + batch + "×" + seq + " needs " + batch * seq
                    + " inputs and targets, got " + inputs.length + " and " + targets.length);
        }
        if (positions != null) checkPositions(positions, batch, seq);
    }

    public Batch(int[] inputs, int[] targets, int batch, int seq) {
        this(inputs, targets, batch, seq, null);
    }

    /** Each sequence's ids are runs 0, 1, 2, …: starting at 0, each either 0 (a new example) or one more than the last. */
    private static void checkPositions(int[] positions, int batch, int seq) {
        if (positions.length != batch * seq) {
            throw new IllegalArgumentException("a batch of " + batch + "×" + seq + " needs " + batch * seq + " position ids, got "
                    + positions.length);
        }
        for (int i = 0; i < positions.length; i++) {
            int p = positions[i];
            boolean ok = i % seq == 0 ? p == 0 : p == 0 || p == positions[i - 1] + 1;
            if (!ok) throw new IllegalArgumentException("position id " + p + " at " + i + " does not start or continue an example");
        }
    }

    /** Sequences [from, to) of this batch: a replica's share. */
    public Batch rows(int from, int to) {
        if (from < 0 || to > batch || from >= to) throw new IllegalArgumentException("sequences [" + from + ", " + to + ") of a batch of " + batch);
        return new Batch(java.util.Arrays.copyOfRange(inputs, from * seq, to * seq), java.util.Arrays.copyOfRange(targets, from * seq, to * seq),
                to - from, seq, positions == null ? null : java.util.Arrays.copyOfRange(positions, from * seq, to * seq));
    }

    public int tokens() {
        return batch * seq;
    }
}
