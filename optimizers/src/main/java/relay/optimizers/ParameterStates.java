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

    /** The exported values of p's state under role, which must hold {@code size} values. */
    static float[] exported(java.util.Map<String, float[]> values, Parameter p, String role, long size) {
        String key = p.name() + "/" + role;
        float[] v = values.get(key);
        if (v == null) throw new IllegalArgumentException("optimizer state " + key + " is missing");
        if (v.length != size) throw new IllegalArgumentException("optimizer state " + key + " has " + v.length + " values, not " + size);
        return v;
    }

    /** The update count exported under p's "steps"-like role, or -1 when p has no state. */
    static int count(java.util.Map<String, float[]> values, Parameter p, String role) {
        float[] v = values.get(p.name() + "/" + role);
        return v == null ? -1 : (int) exported(values, p, role, 1)[0];
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
