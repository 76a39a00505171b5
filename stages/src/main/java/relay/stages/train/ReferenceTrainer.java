package relay.stages.train;

import java.util.List;
import relay.stages.layers.Parameter;
import relay.stages.model.Model;

/**
 * The plain single-process training loop — embedding, blocks, head, one microbatch after another with
 * gradient accumulation, then plain SGD on the mean gradient. No actors, nothing clever: the oracle the
 * actor pipeline is held to.
 */
public final class ReferenceTrainer {
    private final Model model;
    private final float learningRate;

    public ReferenceTrainer(Model model, float learningRate) {
        this.model = model;
        this.learningRate = learningRate;
    }

    /** One optimizer step over the given microbatches; returns their mean loss. */
    public double step(List<Batch> microbatches) {
        if (microbatches.isEmpty()) throw new IllegalArgumentException("a step needs at least one microbatch");
        float scale = 1f / microbatches.size();
        double loss = 0;
        try (GradientAccumulator grads = new GradientAccumulator()) {
            for (Batch b : microbatches) {
                loss += model.forwardBackward(b.inputs(), b.targets(), b.batch(), b.seq(), scale, grads);
            }
            for (Parameter p : grads.parameters()) {
                p.value().device().axpy(-learningRate, grads.gradient(p), p.value());
            }
        }
        double mean = loss / microbatches.size();
        if (!Double.isFinite(mean)) throw new ArithmeticException("loss is " + mean + ": training diverged");
        return mean;
    }
}
