package relay.stages.train;

/**
 * One microbatch: batch sequences of seq tokens, row-major, and the next-token targets. A target of
 * {@link #IGNORED} (any negative one) is not counted in the loss: a prompt's tokens, or padding.
 */
public record Batch(int[] inputs, int[] targets, int batch, int seq) {
    /** The target of a position the loss skips (Hugging Face's ignore index). */
    public static final int IGNORED = -100;

    public Batch {
        if (inputs.length != batch * seq || targets.length != batch * seq) {
            throw new IllegalArgumentException("a batch of " + batch + "×" + seq + " needs " + batch * seq
                    + " inputs and targets, got " + inputs.length + " and " + targets.length);
        }
    }

    public int tokens() {
        return batch * seq;
    }

    /** Targets the loss counts. */
    public int counted() {
        return relay.stages.model.LmHead.counted(targets);
    }
}
