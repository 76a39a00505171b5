package relay.actors;

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
 * optimizer state). A replica's summed gradient of a parameter goes to the owner, in parts of whole rows; the owner
 * adds every replica's in replica order (the same sum whichever arrives first), applies its update once and sends the
 * new values to the others, which take them before the next pass. A gradient lives only until its owner has summed it.
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
    /** Each owned parameter's gradients of this pass by replica, until all are here. */
    private final Map<Parameter, Contributions> pending = new HashMap<>();
    /** Parameters of other owners whose new values this replica still waits for, with the rows arrived so far. */
    private final Map<Parameter, TiedRows> awaited = new HashMap<>();

    /** The gradients of one owned parameter: each replica's, assembled from its parts. */
    private static final class Contributions {
        final Tensor[] byReplica;
        final int[] rows;

        Contributions(int replicas) {
            byReplica = new Tensor[replicas];
            rows = new int[replicas];
        }

        boolean complete(int total) {
            for (int r = 0; r < rows.length; r++) if (byReplica[r] == null || rows[r] < total) return false;
            return true;
        }

        void close() {
            for (Tensor t : byReplica) if (t != null) t.close();
        }
    }

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


    /**
     * The stage's gradient of a parameter summed over its share of the pass (handed over): to the owner, or kept
     * toward the sum. An updating pass then waits for the owner's new values of a parameter it does not own.
     */
    void contribute(Parameter p, Tensor gradient, Position pass, Outbox out, Settle settle) {
        int o = owner.get(p);
        if (o == replica) {
            Contributions c = pending.computeIfAbsent(p, k -> new Contributions(replicas));
            c.byReplica[replica] = gradient;
            c.rows[replica] = gradient.rows();
            settleIfComplete(p, c, pass, out, settle);
            return;
        }
        try (gradient) {
            TiedRows.split(gradient, (row, part) -> out.toReplica(o, new StageCommand.ReplicaGradient(pass, p.name(), replica, row,
                    TensorPayload.of(part)), pass));
        }
        if (pass.pass() == Pass.TRAIN) awaited.putIfAbsent(p, new TiedRows(p.value().rows()));
    }

    /** A part of another replica's gradient of a parameter this replica owns. */
    void take(StageCommand.ReplicaGradient m, Outbox out, Settle settle) {
        Parameter p = parameter(m.parameter());
        if (!owns(p)) throw new IllegalStateException("replica " + m.replica() + " sent its gradient of " + p.name() + " to replica " + replica
                + ", which does not own it");
        Contributions c = pending.computeIfAbsent(p, k -> new Contributions(replicas));
        try (Tensor part = m.gradient().materialize(p.value().device(), Category.COMMUNICATION)) {
            if (c.byReplica[m.replica()] == null) {
                c.byReplica[m.replica()] = p.value().device().empty(Category.COMMUNICATION, p.value().rows(), p.value().cols());
            }
            part.device().copy(part, c.byReplica[m.replica()].rowRange(m.row(), m.row() + part.rows()));
            c.rows[m.replica()] += part.rows();
        }
        settleIfComplete(p, c, m.pass(), out, settle);
    }

    /** A part of a parameter's new values from its owner. */
    void take(StageCommand.ReplicaWeights m) {
        Parameter p = parameter(m.parameter());
        int rows = m.weights().shape()[0];
        m.weights().copyInto(p.value().rowRange(m.row(), m.row() + rows));
        TiedRows arrived = awaited.computeIfAbsent(p, k -> new TiedRows(p.value().rows()));
        if (arrived.arrived(rows)) awaited.remove(p);
    }

    /** Whether, of what was contributed, every owned parameter is settled and every other one's new values taken. */
    boolean settled() {
        return pending.isEmpty() && awaited.isEmpty();
    }

    private Parameter parameter(String name) {
        Parameter p = byName.get(name);
        if (p == null) throw new IllegalArgumentException("no parameter " + name + " in this stage");
        return p;
    }

    /** Once every replica's gradient is here: summed in replica order, settled, and in an updating pass the new values to the others. */
    private void settleIfComplete(Parameter p, Contributions c, Position pass, Outbox out, Settle settle) {
        if (!c.complete(p.value().rows())) return;
        pending.remove(p);
        Tensor sum = c.byReplica[0];
        for (int r = 1; r < replicas; r++) {
            sum.device().axpy(1f, c.byReplica[r], sum);
            c.byReplica[r].close();
        }
        try (sum) {
            settle.apply(p, sum, pass);
        }
        if (pass.pass() != Pass.TRAIN) return;
        for (int r = 0; r < replicas; r++) {
            if (r == replica) continue;
            int to = r;
            TiedRows.split(p.value(), (row, part) -> out.toReplica(to, new StageCommand.ReplicaWeights(pass, p.name(), row,
                    TensorPayload.of(part)), pass));
        }
    }

    /** Frees what a failed (or an earlier) pass left. */
    void discard() {
        pending.values().forEach(Contributions::close);
        pending.clear();
        awaited.clear();
    }

    @Override
    public void close() {
        discard();
    }
}
