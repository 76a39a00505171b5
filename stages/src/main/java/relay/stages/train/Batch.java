package relay.stages.train;

/** One microbatch: batch sequences of seq tokens, row-major, and the next-token targets. */
public record Batch(int[] inputs, int[] targets, int batch, int seq) {
    public Batch {
        if (inputs.length != batch * seq || targets.length != batch * seq) {
            throw new IllegalArgumentException("a batch of " + batch + "×" + seq + " needs " + batch * seq
                    + " inputs and targets, got " + inputs.length + " and " + targets.length);
        }
    }

    public int tokens() {
        return batch * seq;
    }
}
