package relay.stages.train;

import java.util.List;
import relay.stages.model.LmHead;
import relay.stages.model.Model;

/**
 * The plain single-process training loop — embedding, blocks, head, one microbatch after another, the
 * step's gradient being the mean over its microbatches — with the update rule supplied by a
 * {@link TrainingMethod}. No actors, nothing clever: the oracle the actor pipeline is held to.
 */
public final class ReferenceTrainer {
    private final Model model;
    private final TrainingMethod method;
    private int step;

    public ReferenceTrainer(Model model, TrainingMethod method) {
        this(model, method, 0);
    }

    /** A trainer whose next step is {@code firstStep} (a resumed run: schedules and LISA draws go on from there). */
    public ReferenceTrainer(Model model, TrainingMethod method, int firstStep) {
        this.model = model;
        this.method = method;
        this.step = firstStep;
    }

    /** Classic SGD with the given learning rate. */
    public static ReferenceTrainer sgd(Model model, float learningRate) {
        return new ReferenceTrainer(model, new PlainSgd(learningRate));
    }

    public int stepsDone() {
        return step;
    }

    /**
     * One optimizer step over the given microbatches; returns its loss, the mean over every target the step counts —
     * each microbatch weighs as many targets as it counts (masked prompts and padding do not), so the step equals one
     * over all their rows at once.
     */
    public double step(List<Batch> microbatches) {
        if (microbatches.isEmpty()) throw new IllegalArgumentException("a step needs at least one microbatch");
        int m = microbatches.size();
        int[] counted = microbatches.stream().mapToInt(b -> LmHead.counted(b.targets())).toArray();
        int all = java.util.Arrays.stream(counted).sum();
        method.beginStep(step);
        double loss = 0;
        for (int j = 0; j < m; j++) {
            float weight = LmHead.weightInStep(counted[j], m, all);
            loss += weight * method.microbatch(model, microbatches.get(j), weight / m);
        }
        method.endStep();
        step++;
        double mean = loss / m;
        if (!Double.isFinite(mean)) throw new ArithmeticException("loss is " + mean + " at step " + step + ": training diverged");
        return mean;
    }
}
