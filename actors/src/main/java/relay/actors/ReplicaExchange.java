package relay.actors;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.tensor.Tensor;
import relay.transport.TensorPayload;

/**
 * A stage's share of its group — the same stage in every replica of the pipeline — at the end of a pass. Each
 * parameter the stage updates is owned by one replica (whole parameters, balanced by size: the owner alone keeps its
 * optimizer state). Its gradient is summed along a chain in replica order ending at the owner: the replica after the
 * owner sends its own sum to the next, which adds its own and passes it on, in parts of whole rows, so a replica
 * holds its own gradient and at most the parts that came before it was ready; the owner adds the last partial sum to
 * its own, applies its update once and sends the new values to the others, which take them before the next pass. The
 * chain fixes the order of the additions, so a run is bit-identical to itself; a gradient lives only until it has
 * been passed on.
 */
final class ReplicaExchange implements AutoCloseable {

    /** What the stage does with a parameter's gradient summed over every replica: its update, or its squared norm. */
    interface Settle {
        void apply(Parameter p, Tensor summed, Position pass);
    }

    private final int replica;
    private final int replicas;
    private final Map<String, Parameter> byName = new HashMap<>();
    private final Map<Parameter, Integer> owner = new HashMap<>();
    /** This replica's gradient of each parameter it adds into the chain's partial sum, with the rows added so far. */
    private final Map<Parameter, Tensor> own = new HashMap<>();
    private final Map<Parameter, Integer> rowsAdded = new HashMap<>();
    /** Parts of the partial sum that came before this replica's own gradient was ready. */
    private final Map<Parameter, List<StageCommand.ReplicaGradient>> early = new HashMap<>();
    /** Parameters of other owners whose new values this replica still waits for, with the rows arrived so far. */
    private final Map<Parameter, TiedRows> awaited = new HashMap<>();

    /**
     * @param updated the parameters the stage updates, in the same order on every replica
     */
    ReplicaExchange(int replica, int replicas, List<Parameter> updated) {
        this.replica = replica;
        this.replicas = replicas;
        int[] of = owners(updated.stream().mapToLong(p -> p.value().size()).toArray(), replicas);
        for (int i = 0; i < updated.size(); i++) {
            owner.put(updated.get(i), of[i]);
            byName.put(updated.get(i).name(), updated.get(i));
        }
    }

    /**
     * The owner of each parameter of these sizes: the largest first, each to the replica holding least so far (the
     * lower one on a tie), so every replica computes the same owners.
     */
    static int[] owners(long[] sizes, int replicas) {
        Integer[] order = new Integer[sizes.length];
        for (int i = 0; i < order.length; i++) order[i] = i;
        java.util.Arrays.sort(order, (a, b) -> Long.compare(sizes[b], sizes[a]));
        long[] held = new long[replicas];
        int[] out = new int[sizes.length];
        for (int i : order) {
            int least = 0;
            for (int r = 1; r < replicas; r++) if (held[r] < held[least]) least = r;
            out[i] = least;
            held[least] += sizes[i];
        }
        return out;
    }

    /** Whether this replica owns the parameter's update (and keeps its optimizer state). */
    boolean owns(Parameter p) {
        Integer o = owner.get(p);
        return o != null && o == replica;
    }

    /** The chain of a parameter starts at the replica after its owner. */
    private boolean startsChain(Parameter p) {
        return (owner.get(p) + 1) % replicas == replica;
    }

    private int next() {
        return (replica + 1) % replicas;
    }

    /**
     * The stage's gradient of a parameter summed over its share of the pass (handed over): sent on at once by the
     * chain's first replica, else kept until the partial sum before it arrives. An updating pass then waits for the
     * owner's new values of a parameter it does not own.
     */
    void contribute(Parameter p, Tensor gradient, Position pass, Outbox out, Settle settle) {
        if (!owns(p) && pass.pass() == Pass.TRAIN) awaited.putIfAbsent(p, new TiedRows(p.value().rows()));
        if (startsChain(p)) {
            try (gradient) {
                TiedRows.split(gradient, (row, part) -> out.toReplica(next(), new StageCommand.ReplicaGradient(pass, p.name(), replica, row,
                        TensorPayload.of(part)), pass));
            }
            return;
        }
        own.put(p, gradient);
        rowsAdded.put(p, 0);
        List<StageCommand.ReplicaGradient> before = early.remove(p);
        if (before != null) for (StageCommand.ReplicaGradient m : before) add(p, m, out, settle);
    }

    /** A part of the partial sum from the replica before this one in the chain. */
    void take(StageCommand.ReplicaGradient m, Outbox out, Settle settle) {
        Parameter p = parameter(m.parameter());
        if (m.replica() != (replica + replicas - 1) % replicas || startsChain(p)) {
            throw new IllegalStateException("replica " + replica + " took a partial sum of " + p.name() + " from replica " + m.replica()
                    + ", not the one before it in the chain");
        }
        if (own.containsKey(p)) {
            add(p, m, out, settle);
        } else {
            early.computeIfAbsent(p, k -> new ArrayList<>()).add(m);
        }
    }

    /** Adds this replica's rows to a part of the partial sum: passed on, or at the owner added into its own until the sum is whole. */
    private void add(Parameter p, StageCommand.ReplicaGradient m, Outbox out, Settle settle) {
        Tensor mine = own.get(p);
        Tensor part = m.gradient().materialize(mine.device(), Category.COMMUNICATION);
        int rows = part.rows();
        Tensor myRows = mine.rowRange(m.row(), m.row() + rows);
        if (owns(p)) {
            try (part) {
                mine.device().axpy(1f, part, myRows);
            }
        } else {
            mine.device().axpy(1f, myRows, part);
            out.toReplica(next(), new StageCommand.ReplicaGradient(m.pass(), p.name(), replica, m.row(), TensorPayload.of(part)), m.pass());
        }
        int added = rowsAdded.merge(p, rows, Integer::sum);
        if (added < mine.rows()) return;
        own.remove(p);
        rowsAdded.remove(p);
        try (mine) {
            if (owns(p)) settle.apply(p, mine, m.pass());
        }
        if (owns(p) && m.pass().pass() == Pass.TRAIN) {
            for (int r = 0; r < replicas; r++) {
                if (r == replica) continue;
                int to = r;
                TiedRows.split(p.value(), (row, values) -> out.toReplica(to, new StageCommand.ReplicaWeights(m.pass(), p.name(), row,
                        TensorPayload.of(values)), m.pass()));
            }
        }
    }

    /** A part of a parameter's new values from its owner. */
    void take(StageCommand.ReplicaWeights m) {
        Parameter p = parameter(m.parameter());
        int rows = m.weights().shape()[0];
        m.weights().copyInto(p.value().rowRange(m.row(), m.row() + rows));
        TiedRows arrived = awaited.computeIfAbsent(p, k -> new TiedRows(p.value().rows()));
        if (arrived.arrived(rows)) awaited.remove(p);
    }

    /** Whether, of what was contributed, every partial sum was passed on (or settled, at its owner) and every new value taken. */
    boolean settled() {
        return own.isEmpty() && early.isEmpty() && awaited.isEmpty();
    }

    private Parameter parameter(String name) {
        Parameter p = byName.get(name);
        if (p == null) throw new IllegalArgumentException("no parameter " + name + " in this stage");
        return p;
    }

    /** Frees what a failed (or an earlier) pass left. */
    void discard() {
        own.values().forEach(Tensor::close);
        own.clear();
        rowsAdded.clear();
        early.values().forEach(parts -> parts.forEach(m -> m.gradient().discard()));
        early.clear();
        awaited.clear();
    }

    @Override
    public void close() {
        discard();
    }
}
