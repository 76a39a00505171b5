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
    ONE_F_ONE_B,
    /**
     * Zero Bubble's ZB-H1 (Qi et al., 2024): 1F1B with each block's backward split into the input gradient (B),
     * which the previous device waits for, and the weight gradients (W), which nothing waits for. Device d
     * keeps up to d microbatches' W pending and runs them where 1F1B would idle, last of all at the end of the
     * step, so every device holds at most {@code devices} microbatches' activations, as 1F1B's first does.
     */
    ZB_H1;

    /** What an action computes: a forward, a backward's input gradient (the whole backward unless split), or the weight gradients. */
    public enum Kind { F, B, W }

    /** One step of a device's plan. */
    public record Action(Kind kind, int microbatch) {
        public boolean forward() {
            return kind == Kind.F;
        }

        @Override
        public String toString() {
            return kind.name() + microbatch;
        }
    }

    /** Whether block backwards are split into B and W actions. */
    public boolean splitsBackward() {
        return this == ZB_H1;
    }

    public List<Action> plan(int device, int devices, int microbatches) {
        List<Action> plan = new ArrayList<>();
        if (this == GPIPE) {
            for (int j = 0; j < microbatches; j++) plan.add(new Action(Kind.F, j));
            for (int j = 0; j < microbatches; j++) plan.add(new Action(Kind.B, j));
            return plan;
        }
        int warmup = Math.min(devices - device - 1, microbatches);
        int pendingW = this == ZB_H1 ? device : Integer.MAX_VALUE;
        int f = 0, w = 0;
        while (f < warmup) plan.add(new Action(Kind.F, f++));
        for (int b = 0; b < microbatches; ) {
            if (f < microbatches) plan.add(new Action(Kind.F, f++));
            plan.add(new Action(Kind.B, b++));
            if (b - w > pendingW) plan.add(new Action(Kind.W, w++));
        }
        if (this == ZB_H1) while (w < microbatches) plan.add(new Action(Kind.W, w++));
        return plan;
    }

    /** The idle fraction of a perfectly balanced pipeline with unsplit backwards: (p − 1) / (m + p − 1). */
    public static double theoreticalBubble(int devices, int microbatches) {
        return (devices - 1.0) / (microbatches + devices - 1.0);
    }

    /** The name a user types. */
    public String key() {
        return switch (this) {
            case GPIPE -> "gpipe";
            case ONE_F_ONE_B -> "1f1b";
            case ZB_H1 -> "zb-h1";
        };
    }

    public static PipelineSchedule parse(String s) {
        return switch (s.toLowerCase(java.util.Locale.ROOT)) {
            case "gpipe" -> GPIPE;
            case "1f1b", "one_f_one_b" -> ONE_F_ONE_B;
            case "zb-h1", "zb_h1", "zbh1" -> ZB_H1;
            default -> throw new IllegalArgumentException("unknown schedule '" + s + "' (gpipe, 1f1b, zb-h1)");
        };
    }
}
