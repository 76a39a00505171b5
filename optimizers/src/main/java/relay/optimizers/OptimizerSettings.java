package relay.optimizers;

/**
 * Hyper-parameters of every method, grouped by what uses them, with customary defaults. The learning rate and
 * weight decay apply to every update rule; the other groups only to the methods that name them. Changing one
 * group is one wither, so no caller copies the others field by field.
 *
 * @param seed the draws of LISA's blocks, RSO's subspaces, GaLore's projectors and LoRA's adapters
 */
public record OptimizerSettings(float lr, float weightDecay, Adam adam, Clipping clipping, LrSchedule lrSchedule, Lisa lisa,
                                LowRank lowRank, long seed) {

    /** Adam's moment decay rates and the term that keeps its denominator away from zero (AdamW, GaLore). */
    public record Adam(float beta1, float beta2, float eps) {
        public static final Adam DEFAULT = new Adam(0.9f, 0.999f, 1e-8f);
    }

    /** Steps of linear warm-up, and the step the cosine decay ends at (0: a constant rate, no warm-up). */
    public record LrSchedule(int warmup, int totalSteps) {
        public static final LrSchedule CONSTANT = new LrSchedule(0, 0);

        /** Warm-up then cosine decay to a tenth of {@code lr} when a total is set; otherwise constant. */
        Schedule of(float lr) {
            return totalSteps > 0 ? Schedule.warmupCosine(lr, Math.max(1, warmup), totalSteps, lr / 10) : Schedule.constant(lr);
        }
    }

    /** LISA: {@code gamma} blocks trained at a time, redrawn every {@code period} steps (K). */
    public record Lisa(int gamma, int period) {
        public static final Lisa DEFAULT = new Lisa(2, 10);
    }

    /**
     * The low-rank methods: the rank of RSO's subspaces, GaLore's projections and LoRA's adapters alike; steps between
     * RSO's redraws; updates between GaLore's projector refreshes (T) and its scale; LoRA's alpha.
     */
    public record LowRank(int rank, int rsoPeriod, int galoreGap, float galoreScale, float loraAlpha) {
        public static final LowRank DEFAULT = new LowRank(8, 50, 50, 0.25f, 16f);

        public LowRank withRank(int r) {
            return new LowRank(r, rsoPeriod, galoreGap, galoreScale, loraAlpha);
        }
    }

    /** Defaults for a learning rate, with no schedule beyond a constant rate. */
    public static OptimizerSettings defaults(float lr) {
        return new OptimizerSettings(lr, 0f, Adam.DEFAULT, Clipping.NONE, LrSchedule.CONSTANT, Lisa.DEFAULT, LowRank.DEFAULT, 1234);
    }

    public OptimizerSettings withAdam(Adam a) {
        return new OptimizerSettings(lr, weightDecay, a, clipping, lrSchedule, lisa, lowRank, seed);
    }

    public OptimizerSettings withClipping(Clipping c) {
        return new OptimizerSettings(lr, weightDecay, adam, c, lrSchedule, lisa, lowRank, seed);
    }

    public OptimizerSettings withLrSchedule(LrSchedule s) {
        return new OptimizerSettings(lr, weightDecay, adam, clipping, s, lisa, lowRank, seed);
    }

    public OptimizerSettings withLisa(Lisa l) {
        return new OptimizerSettings(lr, weightDecay, adam, clipping, lrSchedule, l, lowRank, seed);
    }

    public OptimizerSettings withLowRank(LowRank r) {
        return new OptimizerSettings(lr, weightDecay, adam, clipping, lrSchedule, lisa, r, seed);
    }

    /** The learning rate at each step. */
    public Schedule schedule() {
        return lrSchedule.of(lr);
    }

    public AdamW adamW() {
        return new AdamW(adam.beta1(), adam.beta2(), adam.eps(), weightDecay);
    }
}
