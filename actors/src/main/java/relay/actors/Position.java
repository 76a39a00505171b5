package relay.actors;

/**
 * Where a message stands in the run: the step, the pass (the coordinator numbers every pass it starts, so
 * two passes never look alike), the microbatch of how many and its shape, and the clip factor by which the
 * updating pass scales every weight gradient.
 */
public record Position(long step, Pass pass, long passId, int microbatch, int microbatches, int batch, int seq, float clip) {

    /** The same pass, another microbatch. */
    public Position withMicrobatch(int mb) {
        return new Position(step, pass, passId, mb, microbatches, batch, seq, clip);
    }

    /** Whether two positions are in the same pass. */
    public boolean samePass(Position o) {
        return o != null && passId == o.passId;
    }

    @Override
    public String toString() {
        return "step " + step + (pass == Pass.TRAIN ? "" : " (" + pass.name().toLowerCase(java.util.Locale.ROOT) + " pass)")
                + " microbatch " + microbatch + "/" + microbatches;
    }
}
