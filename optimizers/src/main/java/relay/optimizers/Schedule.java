package relay.optimizers;

/** The learning rate at each step. */
@FunctionalInterface
public interface Schedule {
    float at(int step);

    static Schedule constant(float lr) {
        return step -> lr;
    }

    /** Linear warm-up from 0 to {@code peak} over {@code warmup} steps, then cosine decay to {@code floor} at {@code total}. */
    static Schedule warmupCosine(float peak, int warmup, int total, float floor) {
        return step -> {
            if (step < warmup) return peak * (step + 1) / warmup;
            double progress = Math.min(1.0, (step - warmup) / (double) Math.max(1, total - warmup));
            return (float) (floor + (peak - floor) * 0.5 * (1 + Math.cos(Math.PI * progress)));
        };
    }

    /** Linear warm-up to {@code peak}, then linear decay to {@code floor} at {@code total}. */
    static Schedule warmupLinear(float peak, int warmup, int total, float floor) {
        return step -> {
            if (step < warmup) return peak * (step + 1) / warmup;
            double progress = Math.min(1.0, (step - warmup) / (double) Math.max(1, total - warmup));
            return (float) (peak + (floor - peak) * progress);
        };
    }
}
