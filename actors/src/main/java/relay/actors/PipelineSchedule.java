package relay.actors;

import java.util.ArrayList;
import java.util.List;

/**
 * The order in which each device runs forwards and backwards of a step's microbatches. Every stage on a
 * device follows its device's plan, waiting for the message an action needs; the coordinator only starts
 * passes, so it is never in the per-microbatch path.
 */
public enum PipelineSchedule {
    /** All forwards, then all backwards. */
    GPIPE,
    /** Warm-up forwards (devices − device − 1 of them), then one forward one backward, then the remaining backwards. */
    ONE_F_ONE_B;

    /** One step of a device's plan: forward or backward of one microbatch. */
    public record Action(boolean forward, int microbatch) {
        @Override
        public String toString() {
            return (forward ? "F" : "B") + microbatch;
        }
    }

    public List<Action> plan(int device, int devices, int microbatches) {
        List<Action> plan = new ArrayList<>();
        if (this == GPIPE) {
            for (int j = 0; j < microbatches; j++) plan.add(new Action(true, j));
            for (int j = 0; j < microbatches; j++) plan.add(new Action(false, j));
            return plan;
        }
        int warmup = Math.min(devices - device - 1, microbatches);
        for (int j = 0; j < warmup; j++) plan.add(new Action(true, j));
        for (int j = warmup; j < microbatches; j++) {
            plan.add(new Action(true, j));
            plan.add(new Action(false, j - warmup));
        }
        for (int j = microbatches - warmup; j < microbatches; j++) plan.add(new Action(false, j));
        return plan;
    }

    /** The idle fraction a perfectly balanced pipeline has: (p − 1) / (m + p − 1), for both schedules. */
    public static double theoreticalBubble(int devices, int microbatches) {
        return (devices - 1.0) / (microbatches + devices - 1.0);
    }

    /** The name a user types. */
    public String key() {
        return this == GPIPE ? "gpipe" : "1f1b";
    }

    public static PipelineSchedule parse(String s) {
        return switch (s.toLowerCase(java.util.Locale.ROOT)) {
            case "gpipe" -> GPIPE;
            case "1f1b", "one_f_one_b" -> ONE_F_ONE_B;
            default -> throw new IllegalArgumentException("unknown schedule '" + s + "' (gpipe, 1f1b)");
        };
    }
}
