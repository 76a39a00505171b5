package relay.stages.layers;

import relay.stages.memory.Category;
import relay.stages.tensor.Tensor;

/**
 * Receives weight gradients one parameter at a time, the moment each is complete. A fresh gradient is
 * freed as soon as {@code accept} returns, so a sink that applies it at once (LOMO) keeps a block's
 * gradient memory at the size of one parameter. A sink that sums gradients over a step instead offers its
 * running sum through {@link #sumFor}, and layers add into it directly — no second copy ever exists.
 * Backward is called with a {@code null} sink for a frozen stage: then no weight gradient is computed.
 */
@FunctionalInterface
public interface GradientSink {
    void accept(Parameter parameter, Tensor gradient);

    /** The running sum layers should add p's gradient into (accept is then not called), or null. */
    default Tensor sumFor(Parameter p) {
        return null;
    }

    /** Whether a running sum for p exists already (asking makes none, where {@link #sumFor} may). */
    default boolean holdsSumFor(Parameter p) {
        return false;
    }

    /**
     * Weight-gradient work reading {@code inputs} — output gradients the backward frees or changes after this
     * call — besides what the forward saved. It runs at once here; {@link DeferredWeightGradients} keeps copies
     * of the inputs and runs it later, the W of a zero-bubble schedule.
     */
    default void weightWork(java.util.List<Tensor> inputs, WeightWork work) {
        work.run(inputs, this);
    }

    /** Computes weight gradients from output gradients and hands them to a sink. */
    @FunctionalInterface
    interface WeightWork {
        void run(java.util.List<Tensor> inputs, GradientSink sink);
    }

    /** Hands {@code gradient} to {@code sink} and frees it afterwards, whatever the sink does. */
    static void emit(GradientSink sink, Parameter parameter, Tensor gradient) {
        try {
            sink.accept(parameter, gradient);
        } finally {
            gradient.close();
        }
    }

    /**
     * Where a layer adds one parameter's gradient: the sink's running sum, or a fresh zeroed tensor. Layers
     * always add, so a gradient is computed by the same operations whichever sink receives it.
     */
    record Slot(GradientSink sink, Parameter parameter, Tensor tensor, boolean fresh) {
        /** Hands a fresh gradient to the sink (and frees it); a running sum needs nothing more. */
        public void done() {
            if (fresh) emit(sink, parameter, tensor);
        }

        /** Its computation failed: a fresh gradient, handed to nobody, is freed; a running sum stays the sink's. */
        public void abandon() {
            if (fresh) tensor.close();
        }
    }

    static Slot slot(GradientSink sink, Parameter p) {
        Tensor sum = sink.sumFor(p);
        if (sum != null) return new Slot(sink, p, sum, false);
        return new Slot(sink, p, p.value().device().allocate(Category.GRADIENTS, p.value().shape()), true);
    }
}
