package relay.stages.layers;

import relay.stages.tensor.Tensor;

/**
 * A trainable tensor with its Hugging Face name. It owns its value; {@code decay} says whether weight
 * decay applies (not to norms and biases, as is customary).
 */
public final class Parameter implements AutoCloseable {
    private final String name;
    private final Tensor value;
    private final boolean decay;

    public Parameter(String name, Tensor value, boolean decay) {
        this.name = name;
        this.value = value;
        this.decay = decay;
    }

    public String name() {
        return name;
    }

    public Tensor value() {
        return value;
    }

    public boolean decay() {
        return decay;
    }

    public long size() {
        return value.size();
    }

    @Override
    public void close() {
        value.close();
    }

    @Override
    public String toString() {
        return name + " " + value.describe();
    }
}
