package relay.optimizers;

/**
 * Hyper-parameters of every method, with customary defaults. Ranks apply to RSO's subspaces, GaLore's
 * projections and LoRA's adapters alike.
 *
 * @param lisaGamma  blocks trained at a time under LISA
 * @param lisaPeriod steps between LISA draws (K)
 * @param rsoPeriod  steps between RSO subspace redraws
 * @param galoreGap  updates between GaLore projector refreshes (T)
 */
public record OptimizerSettings(float lr, float weightDecay, float beta1, float beta2, float eps, Clipping clipping,
                                int warmup, int totalSteps, int lisaGamma, int lisaPeriod, int rank, int rsoPeriod,
                                int galoreGap, float galoreScale, float loraAlpha, long seed) {

    /** Defaults for a learning rate, with no schedule beyond a constant rate. */
    public static OptimizerSettings defaults(float lr) {
        return new OptimizerSettings(lr, 0f, 0.9f, 0.999f, 1e-8f, Clipping.NONE, 0, 0, 2, 10, 8, 50, 50, 0.25f, 16f, 1234);
    }

    public OptimizerSettings withClipping(Clipping c) {
        return new OptimizerSettings(lr, weightDecay, beta1, beta2, eps, c, warmup, totalSteps, lisaGamma, lisaPeriod,
                rank, rsoPeriod, galoreGap, galoreScale, loraAlpha, seed);
    }

    public OptimizerSettings withLisa(int gamma, int period) {
        return new OptimizerSettings(lr, weightDecay, beta1, beta2, eps, clipping, warmup, totalSteps, gamma, period,
                rank, rsoPeriod, galoreGap, galoreScale, loraAlpha, seed);
    }

    public OptimizerSettings withRank(int r) {
        return new OptimizerSettings(lr, weightDecay, beta1, beta2, eps, clipping, warmup, totalSteps, lisaGamma,
                lisaPeriod, r, rsoPeriod, galoreGap, galoreScale, loraAlpha, seed);
    }

    public OptimizerSettings withSchedule(int warmupSteps, int total) {
        return new OptimizerSettings(lr, weightDecay, beta1, beta2, eps, clipping, warmupSteps, total, lisaGamma,
                lisaPeriod, rank, rsoPeriod, galoreGap, galoreScale, loraAlpha, seed);
    }

    /** Warm-up then cosine decay to a tenth when a total is set; otherwise constant. */
    public Schedule schedule() {
        return totalSteps > 0 ? Schedule.warmupCosine(lr, Math.max(1, warmup), totalSteps, lr / 10) : Schedule.constant(lr);
    }

    public AdamW adamW() {
        return new AdamW(beta1, beta2, eps, weightDecay);
    }
}
