package relay.stages.model;

/**
 * The rotary embedding's frequencies as Hugging Face transformers computes them for each rope_type
 * (modeling_rope_utils), and the factor it multiplies cos and sin by (yarn's attention factor, else 1).
 * Computed in double: transformers works in float32, which differs from this by float32 rounding only.
 *
 * @param headDim      the rotated width of a head (the whole head: partial rotation is refused when read)
 * @param theta        the base, rope_theta
 * @param maxPositions max_position_embeddings (dynamic scaling starts past it; yarn's default original length)
 */
public record RotaryEmbedding(int headDim, double theta, int maxPositions, ModelConfig.Rope rope) {

    public static RotaryEmbedding of(ModelConfig c) {
        return new RotaryEmbedding(c.headDim(), c.ropeTheta(), c.maxPositions(), c.options().rope());
    }

    /** Whether the frequencies depend on the sequence length (dynamic NTK scaling). */
    public boolean dependsOnLength() {
        return rope.type().equals("dynamic");
    }

    /**
     * inv_freq[i], i &lt; headDim/2, for a sequence of {@code length} positions (0 .. length − 1): only dynamic
     * scaling reads the length, raising the base once the sequence is longer than max_position_embeddings.
     */
    public double[] inverseFrequencies(int length) {
        int half = headDim / 2;
        double base = theta, factor = rope.factor();
        if (dependsOnLength() && length > maxPositions) {
            base = theta * Math.pow(factor * length / maxPositions - (factor - 1), headDim / (headDim - 2.0));
        }
        double[] inv = new double[half];
        for (int i = 0; i < half; i++) inv[i] = 1.0 / Math.pow(base, 2.0 * i / headDim);
        switch (rope.type()) {
            case "linear" -> {
                for (int i = 0; i < half; i++) inv[i] /= factor;
            }
            case "llama3" -> llama3(inv);
            case "yarn" -> yarn(inv);
            default -> { }
        }
        return inv;
    }

    /**
     * Llama 3.1: frequencies whose wavelength is beyond the original context / low_freq_factor are divided by
     * the factor, those under original context / high_freq_factor are kept, and those between are blended.
     */
    private void llama3(double[] inv) {
        double factor = rope.factor(), low = rope.lowFreqFactor(), high = rope.highFreqFactor();
        double original = rope.originalMaxPositions();
        double longest = original / low, shortest = original / high;
        for (int i = 0; i < inv.length; i++) {
            double wavelength = 2 * Math.PI / inv[i];
            if (wavelength > longest) {
                inv[i] /= factor;
            } else if (wavelength >= shortest) {
                double smooth = (original / wavelength - low) / (high - low);
                inv[i] = (1 - smooth) * inv[i] / factor + smooth * inv[i];
            }
        }
    }

    /**
     * YaRN: dimensions that turn fewer than beta_slow times over the original context are interpolated
     * (divided by the factor), those turning more than beta_fast times are kept, with a linear ramp between
     * over the dimension index (its ends rounded out to whole dimensions unless truncate is false).
     */
    private void yarn(double[] inv) {
        double factor = rope.factor();
        double original = rope.originalMaxPositions() > 0 ? rope.originalMaxPositions() : maxPositions;
        double fast = rope.betaFast() != 0 ? rope.betaFast() : 32, slow = rope.betaSlow() != 0 ? rope.betaSlow() : 1;
        double low = correctionDimension(fast, original), high = correctionDimension(slow, original);
        if (rope.truncate()) {
            low = Math.floor(low);
            high = Math.ceil(high);
        }
        low = Math.max(low, 0);
        high = Math.min(high, headDim - 1);
        if (low == high) high += 0.001;  // as transformers does, to keep the ramp finite
        for (int i = 0; i < inv.length; i++) {
            double ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
            double keep = 1 - ramp;  // the share of the unscaled ("extrapolated") frequency
            inv[i] = inv[i] / factor * (1 - keep) + inv[i] * keep;
        }
    }

    /** The dimension whose frequency turns {@code rotations} times over {@code length} positions. */
    private double correctionDimension(double rotations, double length) {
        return headDim * Math.log(length / (rotations * 2 * Math.PI)) / (2 * Math.log(theta));
    }

    /** What cos and sin are multiplied by: yarn's attention factor (given, or from factor and mscale), else 1. */
    public double scale() {
        if (!rope.type().equals("yarn")) return 1;
        if (rope.attentionFactor() > 0) return rope.attentionFactor();
        if (rope.mscale() != 0 && rope.mscaleAllDim() != 0) {
            return mscale(rope.factor(), rope.mscale()) / mscale(rope.factor(), rope.mscaleAllDim());
        }
        return mscale(rope.factor(), 1);
    }

    private static double mscale(double factor, double m) {
        return factor <= 1 ? 1 : 0.1 * m * Math.log(factor) + 1;
    }
}
