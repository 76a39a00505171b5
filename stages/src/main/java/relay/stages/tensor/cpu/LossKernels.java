package relay.stages.tensor.cpu;

import java.nio.FloatBuffer;

/** Cross-entropy over rows of logits, stable through max subtraction, with its gradient written in place. */
final class LossKernels {
    private LossKernels() {}

    static void crossEntropy(FloatBuffer z, int zo, int vocab, int[] targets, int targetOffset, float gradScale,
                             double[] rowLoss, int from, int to) {
        boolean withGrad = gradScale != 0f;
        for (int r = from; r < to; r++) {
            int base = zo + r * vocab;
            int target = targets[targetOffset + r];
            float zt = z.get(base + target);
            float max = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < vocab; j++) max = Math.max(max, z.get(base + j));
            double sum = 0;
            for (int j = 0; j < vocab; j++) {
                float e = FastExp.exp(z.get(base + j) - max);
                if (withGrad) z.put(base + j, e);
                sum += e;
            }
            rowLoss[r] = Math.log(sum) - (zt - max);
            if (withGrad) {
                float k = (float) (gradScale / sum);
                for (int j = 0; j < vocab; j++) z.put(base + j, z.get(base + j) * k);
                z.put(base + target, z.get(base + target) - gradScale);
            }
        }
    }
}
