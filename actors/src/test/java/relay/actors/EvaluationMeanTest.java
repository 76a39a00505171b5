package relay.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.api.Test;
import relay.optimizers.Method;
import relay.stages.model.ModelConfig;
import relay.stages.train.Batch;

/**
 * An evaluation's loss is the mean over every target its batches count: a batch counting one target weighs a twelfth
 * of one counting twelve, and one counting none (an example whose prompt fills its sequence) nothing — rather than
 * each batch's mean weighing the same, which a batch of no counted targets pulled toward 0.
 */
class EvaluationMeanTest {
    @Test
    void batchesWeighTheTargetsTheyCount() {
        ModelConfig cfg = PipelineEquivalenceTest.LLAMA;
        List<Batch> data = PipelineEquivalenceTest.data(cfg, 3).get(0);
        Batch full = data.get(0), one = masked(data.get(1), 1), none = masked(data.get(2), 0);
        PipelineConfig pc = PipelineConfig.defaults(Method.ADAMW, 0.01f);
        try (Pipeline p = Pipeline.start(cfg, PipelineEquivalenceTest.SEED, PipelineEquivalenceTest.placement(2), pc,
                PipelineEquivalenceTest.SERIALIZE)) {
            double lFull = p.evaluate(List.of(full)), lOne = p.evaluate(List.of(one));
            int cFull = full.targets().length;
            // Each batch's weight is a float32 (as the gradient's scale is): to its rounding.
            assertEquals((lFull * cFull + lOne) / (cFull + 1), p.evaluate(List.of(full, one)), 1e-6 * lFull, "weighed by targets counted");
            assertEquals(lFull, p.evaluate(List.of(full, none)), 1e-6 * lFull, "a batch counting none weighs nothing");
        }
    }

    /** The batch with all but its last {@code kept} targets not counted. */
    private static Batch masked(Batch b, int kept) {
        int[] targets = b.targets().clone();
        for (int t = 0; t < targets.length - kept; t++) targets[t] = -100;
        return new Batch(b.inputs(), targets, b.batch(), b.seq(), b.positions());
    }
}
