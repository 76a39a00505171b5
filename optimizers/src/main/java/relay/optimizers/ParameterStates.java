package relay.optimizers;

import java.util.IdentityHashMap;
import java.util.Map;
import java.util.function.Function;
import relay.stages.layers.Parameter;

/** Per-parameter optimizer state, created on a parameter's first update and freed on release. */
final class ParameterStates<S extends AutoCloseable> implements AutoCloseable {
    private final Map<Parameter, S> states = new IdentityHashMap<>();

    S get(Parameter p, Function<Parameter, S> create) {
        return states.computeIfAbsent(p, create);
    }

    void release(Parameter p) {
        S s = states.remove(p);
        if (s != null) closeQuietly(s);
    }

    /** Each parameter's state, for exporting. */
    Map<Parameter, S> all() {
        return java.util.Collections.unmodifiableMap(states);
    }

    int size() {
        return states.size();
    }

    @Override
    public void close() {
        for (S s : states.values()) closeQuietly(s);
        states.clear();
    }

    private static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception e) {
            throw new IllegalStateException("freeing optimizer state", e);
        }
    }
}
