package relay.stages.layers;

import java.util.ArrayList;
import java.util.List;
import relay.stages.memory.Category;
import relay.stages.tensor.Tensor;

/**
 * The W of a split backward (zero-bubble schedules): a sink that takes no gradient during backward but keeps
 * each layer's weight-gradient work, with copies of the output gradients it reads, and the forward's
 * activations the work also reads. {@link #run} computes the gradients later into a real sink and frees
 * everything; {@link #close} frees it without computing (a failed pass, or a frozen block's empty work).
 */
public final class DeferredWeightGradients implements GradientSink, AutoCloseable {
    private record Work(List<Tensor> inputs, WeightWork work) {}

    private final List<Work> pending = new ArrayList<>();
    private AutoCloseable keptAlive;

    @Override
    public void accept(Parameter parameter, Tensor gradient) {
        throw new IllegalStateException("a deferred backward hands out no gradient until it is run");
    }

    @Override
    public void weightWork(List<Tensor> inputs, WeightWork work) {
        List<Tensor> copies = new ArrayList<>();
        for (Tensor t : inputs) {
            Tensor c = t.device().empty(Category.ACTIVATIONS, t.dtype(), t.shape());
            t.device().copy(t, c);
            copies.add(c);
        }
        pending.add(new Work(copies, work));
    }

    /** What the work reads besides its copies (the forward's activations), freed with it. */
    void keepAlive(AutoCloseable activations) {
        keptAlive = activations;
    }

    /** Whether there is work to run (a frozen block's backward leaves none). */
    public boolean isEmpty() {
        return pending.isEmpty();
    }

    /** Computes the weight gradients, in the order backward met them, into {@code sink}; then frees everything. */
    public void run(GradientSink sink) {
        try {
            for (Work w : pending) w.work().run(w.inputs(), sink);
        } finally {
            close();
        }
    }

    @Override
    public void close() {
        for (Work w : pending) w.inputs().forEach(Tensor::close);
        pending.clear();
        if (keptAlive != null) {
            try {
                keptAlive.close();
            } catch (Exception e) {
                throw new IllegalStateException("freeing a deferred backward's activations", e);
            } finally {
                keptAlive = null;
            }
        }
    }
}
