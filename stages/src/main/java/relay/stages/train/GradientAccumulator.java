package relay.stages.train;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import relay.stages.layers.GradientSink;
import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.tensor.Tensor;

/**
 * Sums each parameter's gradient over a step's microbatches (and over both uses of a tied matrix),
 * holding one full gradient per parameter — the memory of a classic trainer, and no more: layers add
 * straight into the sums.
 */
public final class GradientAccumulator implements GradientSink, AutoCloseable {
    private final Map<Parameter, Tensor> sums = new IdentityHashMap<>();
    private final List<Parameter> order = new ArrayList<>();

    /** The running sum for p, created zeroed on first use; layers add into it. */
    @Override
    public Tensor sumFor(Parameter p) {
        return sums.computeIfAbsent(p, k -> {
            order.add(k);
            return k.value().device().allocate(Category.GRADIENTS, k.value().shape());
        });
    }

    @Override
    public boolean holdsSumFor(Parameter p) {
        return sums.containsKey(p);
    }

    @Override
    public void accept(Parameter p, Tensor gradient) {
        gradient.device().axpy(1f, gradient, sumFor(p));
    }

    /** Parameters in the order their first gradient arrived. */
    public List<Parameter> parameters() {
        return List.copyOf(order);
    }

    public Tensor gradient(Parameter p) {
        return sums.get(p);
    }

    /** Removes p's sum and hands it over (the caller owns it), or null when p has none. */
    public Tensor take(Parameter p) {
        order.remove(p);
        return sums.remove(p);
    }

    @Override
    public void close() {
        for (Tensor t : sums.values()) t.close();
        sums.clear();
        order.clear();
    }
}
