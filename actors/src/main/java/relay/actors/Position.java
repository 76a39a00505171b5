package relay.actors;

/**
 * Where a message stands in the run: the step, the microbatch of how many and its shape, the pass (a
 * norm-only pass before the updating one when clipping by global norm) and the clip factor by which the
 * updating pass scales every weight gradient.
 */
public record Position(long step, int microbatch, int microbatches, int batch, int seq, boolean normPass, float clip) {

    /** The same pass of the same step, another microbatch. */
    public Position withMicrobatch(int mb) {
        return new Position(step, mb, microbatches, batch, seq, normPass, clip);
    }

    /** Whether two positions are in the same pass of the same step. */
    public boolean samePass(Position o) {
        return o != null && step == o.step && normPass == o.normPass;
    }

    @Override
    public String toString() {
        return "step " + step + (normPass ? " (norm pass)" : "") + " microbatch " + microbatch + "/" + microbatches;
    }

    relay.transport.proto.Position toProto() {
        return relay.transport.proto.Position.newBuilder().setStep(step).setMicrobatch(microbatch)
                .setMicrobatches(microbatches).setBatch(batch).setSeq(seq).setNormPass(normPass).setClip(clip).build();
    }

    static Position fromProto(relay.transport.proto.Position p) {
        return new Position(p.getStep(), p.getMicrobatch(), p.getMicrobatches(), p.getBatch(), p.getSeq(), p.getNormPass(),
                p.getClip());
    }
}
