package relay.actors;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import relay.stages.io.SafeTensors;

/**
 * A piece of a named tensor leaving or entering a stage — a parameter's values, a part of its optimizer
 * state: the flat elements [offset, offset + values.length) of a tensor of this shape. Large tensors travel
 * in pieces so that no message outgrows a transport frame.
 */
public record TensorPart(String name, int[] shape, long offset, float[] values) {

    /** The most values a message carries in parts: 16 MiB of them. */
    public static final int MESSAGE_FLOATS = 4 << 20;

    /** The tensors cut into parts and grouped into messages of at most {@code floats} values each (at least one group). */
    public static List<List<TensorPart>> split(List<SafeTensors.Tensor32> tensors, int floats) {
        List<List<TensorPart>> groups = new ArrayList<>();
        List<TensorPart> group = new ArrayList<>();
        int room = floats;
        for (SafeTensors.Tensor32 t : tensors) {
            float[] v = t.values();
            int at = 0;
            do {
                if (room == 0) {
                    groups.add(group);
                    group = new ArrayList<>();
                    room = floats;
                }
                int n = Math.min(room, v.length - at);
                group.add(new TensorPart(t.name(), t.shape(), at, n == v.length ? v : java.util.Arrays.copyOfRange(v, at, at + n)));
                room -= n;
                at += n;
            } while (at < v.length);
        }
        groups.add(group);
        return groups;
    }

    /** Named values cut the same way: each a one-dimensional tensor. */
    public static List<List<TensorPart>> split(Map<String, float[]> values, int floats) {
        List<SafeTensors.Tensor32> tensors = new ArrayList<>();
        values.forEach((k, v) -> tensors.add(new SafeTensors.Tensor32(k, new int[] {v.length}, v)));
        return split(tensors, floats);
    }

    /** Parts, none larger than {@code floats} values, grouped in order into messages of at most that many (at least one group). */
    public static List<List<TensorPart>> group(List<TensorPart> parts, int floats) {
        List<List<TensorPart>> groups = new ArrayList<>();
        List<TensorPart> group = new ArrayList<>();
        long size = 0;
        for (TensorPart p : parts) {
            if (!group.isEmpty() && size + p.values().length > floats) {
                groups.add(group);
                group = new ArrayList<>();
                size = 0;
            }
            group.add(p);
            size += p.values().length;
        }
        groups.add(group);
        return groups;
    }

    /** The whole tensors again, in the order their first parts came; a missing or overlapping part is an error. */
    public static List<SafeTensors.Tensor32> assemble(List<TensorPart> parts) {
        Map<String, SafeTensors.Tensor32> whole = new LinkedHashMap<>();
        Map<String, Long> filled = new LinkedHashMap<>();
        for (TensorPart p : parts) {
            SafeTensors.Tensor32 t = whole.computeIfAbsent(p.name(), n -> new SafeTensors.Tensor32(n, p.shape(),
                    new float[Math.toIntExact(relay.stages.tensor.Tensor.sizeOf(p.shape()))]));
            if (p.offset() != filled.getOrDefault(p.name(), 0L)) {
                throw new IllegalArgumentException("part of " + p.name() + " at " + p.offset() + " does not follow the one before");
            }
            System.arraycopy(p.values(), 0, t.values(), Math.toIntExact(p.offset()), p.values().length);
            filled.put(p.name(), p.offset() + p.values().length);
        }
        whole.forEach((n, t) -> {
            if (filled.get(n) != t.values().length) throw new IllegalArgumentException(n + " arrived incomplete");
        });
        return new ArrayList<>(whole.values());
    }

    /** Assembled one-dimensional values by name. */
    public static Map<String, float[]> assembleValues(List<TensorPart> parts) {
        Map<String, float[]> out = new LinkedHashMap<>();
        for (SafeTensors.Tensor32 t : assemble(parts)) out.put(t.name(), t.values());
        return out;
    }
}
