package relay.actors;

import java.util.HashMap;
import java.util.Map;

/** The messages a stage holds until its plan gets to them, by microbatch. */
final class Inbox {
    final Map<Integer, StageCommand.Tokens> tokens = new HashMap<>();
    final Map<Integer, StageCommand.Targets> targets = new HashMap<>();
    final Map<Integer, StageCommand.Forward> forwards = new HashMap<>();
    final Map<Integer, StageCommand.Backward> backwards = new HashMap<>();

    /** Stores a message of the pass; returns false for one an inbox does not hold. */
    boolean put(StageCommand m) {
        if (m instanceof StageCommand.Tokens t) {
            tokens.put(t.pos().microbatch(), t);
        } else if (m instanceof StageCommand.Targets t) {
            targets.put(t.pos().microbatch(), t);
        } else if (m instanceof StageCommand.Forward f) {
            forwards.put(f.pos().microbatch(), f);
        } else if (m instanceof StageCommand.Backward b) {
            backwards.put(b.pos().microbatch(), b);
        } else {
            return false;
        }
        return true;
    }

    /** Frees every tensor still held (after a failure, or when the stage stops). */
    void discard() {
        forwards.values().forEach(f -> f.activation().discard());
        backwards.values().forEach(b -> b.gradient().discard());
        tokens.clear();
        targets.clear();
        forwards.clear();
        backwards.clear();
    }
}
