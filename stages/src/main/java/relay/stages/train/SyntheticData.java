package relay.stages.train;

import java.util.SplittableRandom;

/**
 * Seeded synthetic token streams: the same seed gives the same batches. Each sequence follows a fixed
 * random permutation of the vocabulary (token t is followed by next[t]) from a random start, so the data
 * is learnable, with a given fraction of positions replaced by uniform noise.
 */
public final class SyntheticData {
    private final int vocab;
    private final int batch;
    private final int seq;
    private final double noise;
    private final int[] next;
    private final SplittableRandom rng;

    public SyntheticData(int vocab, int batch, int seq, double noise, long seed) {
        this.vocab = vocab;
        this.batch = batch;
        this.seq = seq;
        this.noise = noise;
        this.rng = new SplittableRandom(seed);
        this.next = new int[vocab];
        for (int i = 0; i < vocab; i++) next[i] = i;
        SplittableRandom perm = new SplittableRandom(seed ^ 0x5DEECE66DL);
        for (int i = vocab - 1; i > 0; i--) {
            int j = perm.nextInt(i + 1), t = next[i];
            next[i] = next[j];
            next[j] = t;
        }
    }

    public Batch next() {
        int[] in = new int[batch * seq], out = new int[batch * seq];
        for (int b = 0; b < batch; b++) {
            int t = rng.nextInt(vocab);
            for (int i = 0; i < seq; i++) {
                int following = rng.nextDouble() < noise ? rng.nextInt(vocab) : next[t];
                in[b * seq + i] = t;
                out[b * seq + i] = following;
                t = following;
            }
        }
        return new Batch(in, out, batch, seq);
    }
}
