package relay.stages.train;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import relay.stages.layers.GradientSink;
import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.tensor.Device;
import relay.stages.tensor.Tensor;

/**
 * Sums each parameter's gradient over a step's microbatches (and over both uses of a tied matrix),
 * holding one full gradient per parameter: the memory of a classic trainer.
 */
public final class GradientAccumulator implements GradientSink, AutoCloseable {
    private final Map<Parameter, Tensor> sums = new IdentityHashMap<>();
    private final List<Parameter> order = new ArrayList<>();

    @Override
    public void accept(Parameter p, Tensor gradient) {
        Tensor sum = sums.get(p);
        Device d = gradient.device();
        if (sum == null) {
            sum = d.empty(Category.GRADIENTS, gradient.shape());
            d.copy(gradient, sum);
            sums.put(p, sum);
            order.add(p);
        } else {
            d.axpy(1f, gradient, sum);
        }
    }

    /** Parameters in the order their first gradient arrived. */
    public List<Parameter> parameters() {
        return List.copyOf(order);
    }

    public Tensor gradient(Parameter p) {
        return sums.get(p);
    }

    @Override
    public void close() {
        for (Tensor t : sums.values()) t.close();
        sums.clear();
        order.clear();
    }
}
