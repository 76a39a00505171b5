package relay.stages.tensor.cpu;

import java.nio.FloatBuffer;

/**
 * Cross-entropy over rows of logits, stable through max subtraction, with its gradient written in place. A row
 * whose target is negative is not counted: its loss is 0 and its gradient row 0.
 */
final class LossKernels {
    private LossKernels() {}

    /** Rows are copied into a heap array, where the loops run without a bounds check per element. */
    static void crossEntropy(FloatBuffer z, int zo, int vocab, int[] targets, int targetOffset, float gradScale,
                             double[] rowLoss, int from, int to) {
        boolean withGrad = gradScale != 0f;
        float[] a = new float[vocab];
        for (int r = from; r < to; r++) {
            int base = zo + r * vocab;
            int target = targets[targetOffset + r];
            if (target < 0) {
                rowLoss[r] = 0;
                if (withGrad) {
                    java.util.Arrays.fill(a, 0f);
                    z.put(base, a, 0, vocab);
                }
                continue;
            }
            z.get(base, a, 0, vocab);
            float zt = a[target];
            float max = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < vocab; j++) max = Math.max(max, a[j]);
            for (int j = 0; j < vocab; j++) a[j] = FastExp.exp(a[j] - max);
            double sum = Sums.sum(a, vocab);
            rowLoss[r] = Math.log(sum) - (zt - max);
            if (withGrad) {
                float k = (float) (gradScale / sum);
                for (int j = 0; j < vocab; j++) a[j] *= k;
                a[target] -= gradScale;
                z.put(base, a, 0, vocab);
            }
        }
    }
}
