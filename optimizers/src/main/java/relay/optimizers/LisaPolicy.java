package relay.optimizers;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * LISA's sampling (Pan et al. 2024, arXiv 2403.17919): the embedding and the head always train; every
 * {@code period} steps γ of the middle blocks are drawn uniformly without replacement and only they train
 * until the next draw. Draw k depends only on (seed, k), so the sequence is reproducible and a run resumed
 * at any step sees exactly the draws it would have seen. The policy decides; applying it (freezing blocks,
 * releasing their optimizer state) is the caller's job.
 */
public final class LisaPolicy {
    private final int blocks;
    private final int gamma;
    private final int period;
    private final long seed;

    /** The policy a method's settings describe for a model of {@code blocks} blocks (γ at most every block). */
    public static LisaPolicy of(int blocks, OptimizerSettings s) {
        return new LisaPolicy(blocks, Math.min(s.lisa().gamma(), blocks), s.lisa().period(), s.seed());
    }

    public LisaPolicy(int blocks, int gamma, int period, long seed) {
        if (gamma < 1 || gamma > blocks) throw new IllegalArgumentException("LISA γ=" + gamma + " must be in [1, " + blocks + "]");
        if (period < 1) throw new IllegalArgumentException("LISA period must be ≥ 1, got " + period);
        this.blocks = blocks;
        this.gamma = gamma;
        this.period = period;
        this.seed = seed;
    }

    public int gamma() {
        return gamma;
    }

    public int period() {
        return period;
    }

    /** Whether a new set is drawn at this step. */
    public boolean redrawsAt(int step) {
        return step % period == 0;
    }

    /** The blocks training during this step, ascending. */
    public int[] activeBlocks(int step) {
        int draw = step / period;
        SplittableRandom rng = new SplittableRandom(seed ^ (0x9E3779B97F4A7C15L * (draw + 1)));
        int[] idx = new int[blocks];
        for (int i = 0; i < blocks; i++) idx[i] = i;
        for (int i = 0; i < gamma; i++) {
            int j = i + rng.nextInt(blocks - i), t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        int[] active = Arrays.copyOf(idx, gamma);
        Arrays.sort(active);
        return active;
    }

    /**
     * Applies the draw in force at a step to a model: blocks leave or join training, and a block that leaves
     * has its optimizer state released (it starts from zero when it is drawn again). Between redraws it
     * changes nothing, so a run resumed at any step can call it from its first step on.
     */
    public void applyTo(relay.stages.model.Model model, int step, UpdateRule rule) {
        int[] active = activeBlocks(step);
        for (int i = 0; i < model.blocks().size(); i++) {
            relay.stages.layers.TransformerBlock b = model.blocks().get(i);
            boolean on = Arrays.binarySearch(active, i) >= 0;
            if (!on && b.trainable()) b.parameters().forEach(rule::release);
            b.setTrainable(on);
        }
    }

    public boolean isActive(int block, int step) {
        return Arrays.binarySearch(activeBlocks(step), block) >= 0;
    }
}
