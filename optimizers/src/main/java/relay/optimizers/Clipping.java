package relay.optimizers;

/**
 * Gradient clipping as LOMO offers it: by value (each element into [−value, value], no extra pass) and by
 * global norm (scale every gradient by min(1, maxNorm / (‖g‖ + 1e-6)), which needs ‖g‖ before any update).
 * Zero disables either.
 */
public record Clipping(float value, float maxNorm) {
    public static final Clipping NONE = new Clipping(0f, 0f);

    public Clipping {
        if (value < 0 || maxNorm < 0) throw new IllegalArgumentException("clipping thresholds must be ≥ 0");
    }

    public boolean byValue() {
        return value > 0;
    }

    public boolean byNorm() {
        return maxNorm > 0;
    }

    /** The factor every gradient is multiplied by, given the global norm. */
    public float factor(double norm) {
        return byNorm() ? (float) Math.min(1.0, maxNorm / (norm + 1e-6)) : 1f;
    }
}
