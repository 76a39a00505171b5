package relay.optimizers;

import java.util.Map;
import java.util.TreeMap;
import relay.stages.model.Model;
import relay.stages.train.Batch;
import relay.stages.train.TrainingMethod;

/**
 * RSO or LoRA on the plain loop: the model's block linears carry the method's {@link LowRankTerms}, trained
 * inside backward; RSO redraws its subspaces before each step that starts a period.
 *
 * <p>Resuming: LoRA's state is its adapters' values and moments, over the base model the run started from.
 * RSO resumes from weights with B·Pᵀ folded in (what a checkpoint holds), B = 0, B's moments and the
 * projection of the current period drawn again from the seed — the same function and the same next updates
 * (B's update does not depend on B without weight decay), equal to an uninterrupted run up to float32
 * rounding.
 */
final class LowRankStep implements TrainingMethod {
    private final InBackwardStep inner;
    private final Training training;
    private final LowRankTerms terms;
    private final int period;
    /** The step whose seed drew the current projections (RSO). */
    private long drawnAt;

    LowRankStep(InBackwardStep inner, Training training, int period) {
        this.inner = inner;
        this.training = training;
        this.terms = training.terms();
        this.period = period;
    }

    /**
     * RSO redraws every {@code period} steps, merging B first and starting its moments afresh; a run resumed
     * within a period draws that period's projections again (B is zero then, its moments kept).
     */
    @Override
    public void beginStep(int step) {
        long draw = LowRankTerms.drawFor(step, period);
        if (terms.redraws() && draw != drawnAt) {
            var bs = terms.redraw(draw);
            if (step == draw) bs.forEach(training.rule()::release);
            drawnAt = draw;
        }
        inner.beginStep(step);
    }

    @Override
    public double microbatch(Model m, Batch b, float gradScale) {
        return inner.microbatch(m, b, gradScale);
    }

    @Override
    public void endStep() {
        inner.endStep();
    }

    /** The rule's state and, for LoRA, the adapters' values ("…lora_A.weight/value"): the model's weights do not hold them. */
    @Override
    public Map<String, float[]> optimizerState() {
        Map<String, float[]> state = new TreeMap<>(training.rule().export());
        state.putAll(terms.values(p -> true));
        return state;
    }

    @Override
    public void restore(Model m, Map<String, float[]> state) {
        terms.restoreValues(state);
        terms.parameters().forEach(p -> training.rule().restore(p, state));
        m.parameters().forEach(p -> training.rule().restore(p, state));
    }

    @Override
    public void close() {
        terms.close();
        inner.close();
    }
}
