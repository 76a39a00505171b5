package relay.actors;

import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.tensor.Tensor;
import relay.transport.TensorPayload;

/**
 * A stage's share of its group — the same stage in every replica of the pipeline — at the end of a pass. Each
 * parameter the stage updates is owned by one replica (whole parameters, balanced by size: the owner alone keeps its
 * optimizer state). Its gradient is summed along a chain in replica order ending at the owner: the replica after the
 * owner starts it, each next one adds the partial sum that reaches it into its own gradient, in place, part by part,
 * and passes the rows on; the owner adds the last one into its own, applies its update once and sends the new values
 * along the same chain, each replica taking them before its next pass and passing them on. A replica passes rows on only once the next one has its own
 * gradient ready ({@link StageCommand.ReplicaReady}), so each holds its own gradient and no more than the parts in
 * flight. The chain fixes the order of the additions, so a run is bit-identical to itself; a gradient lives only until
 * it has been passed on.
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
    /** This replica's gradient of each parameter, with the partial sum of the replicas before it added into its first rows. */
    private final Map<Parameter, Partial> partials = new HashMap<>();
    /** Parameters whose next replica in the chain has its own gradient ready for them. */
    private final Set<Parameter> nextReady = new HashSet<>();
    /** Parameters of other owners whose new values this replica still waits for, with the rows arrived so far. */
    private final Map<Parameter, TiedRows> awaited = new HashMap<>();

    /** A gradient being summed: rows [0, added) hold the chain's sum so far (all of them at its start), rows [0, sent) went on. */
    private static final class Partial {
        final Tensor sum;
        int added, sent;

        Partial(Tensor sum, int added) {
            this.sum = sum;
            this.added = added;
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

    /** The chain of a parameter starts at the replica after its owner. */
    private boolean startsChain(Parameter p) {
        return (owner.get(p) + 1) % replicas == replica;
    }

    private int next() {
        return (replica + 1) % replicas;
    }

    private int previous() {
        return (replica + replicas - 1) % replicas;
    }

    /**
     * The stage's gradient of a parameter summed over its share of the pass (handed over): the chain's start passes
     * it on once the next replica is ready, every other replica says it is ready for the partial sum. An updating
     * pass then waits for the owner's new values of a parameter it does not own.
     */
    void contribute(Parameter p, Tensor gradient, Position pass, Outbox out, Settle settle) {
        if (!owns(p) && pass.pass() == Pass.TRAIN) awaited.putIfAbsent(p, new TiedRows(p.value().rows()));
        boolean start = startsChain(p);
        partials.put(p, new Partial(gradient, start ? gradient.rows() : 0));
        if (start) {
            passOn(p, pass, out);
        } else {
            out.toReplica(previous(), new StageCommand.ReplicaReady(pass, p.name()), pass);
        }
    }

    /** The next replica in the chain has its own gradient of a parameter ready. */
    void take(StageCommand.ReplicaReady m, Outbox out) {
        Parameter p = parameter(m.parameter());
        nextReady.add(p);
        if (partials.containsKey(p)) passOn(p, m.pass(), out);
    }

    /** A part of the partial sum from the replica before this one, added into this replica's rows. */
    void take(StageCommand.ReplicaGradient m, Outbox out, Settle settle) {
        Parameter p = parameter(m.parameter());
        Partial mine = partials.get(p);
        if (m.replica() != previous() || startsChain(p) || mine == null || m.row() != mine.added) {
            throw new IllegalStateException("replica " + replica + " took an unexpected partial sum of " + p.name() + " (rows from " + m.row()
                    + ") from replica " + m.replica());
        }
        try (Tensor part = m.gradient().materialize(mine.sum.device(), Category.COMMUNICATION)) {
            mine.sum.device().axpy(1f, part, mine.sum.rowRange(m.row(), m.row() + part.rows()));
            mine.added += part.rows();
        }
        if (!owns(p)) {
            passOn(p, m.pass(), out);
            return;
        }
        if (mine.added < mine.sum.rows()) return;
        partials.remove(p);
        try (Tensor sum = mine.sum) {
            settle.apply(p, sum, m.pass());
        }
        if (m.pass().pass() == Pass.TRAIN) {
            TiedRows.split(p.value(), (row, values) -> out.toReplica(next(), new StageCommand.ReplicaWeights(m.pass(), p.name(), row,
                    TensorPayload.of(values)), m.pass()));
        }
    }

    /** The summed rows not yet passed on go to the next replica once it is ready; a gradient passed on whole is freed. */
    private void passOn(Parameter p, Position pass, Outbox out) {
        Partial mine = partials.get(p);
        if (!nextReady.contains(p) || mine.sent == mine.added) return;
        TiedRows.split(mine.sum.rowRange(mine.sent, mine.added), (row, part) -> out.toReplica(next(),
                new StageCommand.ReplicaGradient(pass, p.name(), replica, mine.sent + row, TensorPayload.of(part)), pass));
        mine.sent = mine.added;
        if (mine.sent < mine.sum.rows()) return;
        partials.remove(p);
        nextReady.remove(p);
        mine.sum.close();
    }

    /** A part of a parameter's new values from its owner, taken and passed on along the chain to the replica before the owner. */
    void take(StageCommand.ReplicaWeights m, Outbox out) {
        Parameter p = parameter(m.parameter());
        Tensor part = m.weights().materialize(p.value().device(), Category.COMMUNICATION);
        int rows = part.rows();
        part.device().copy(part, p.value().rowRange(m.row(), m.row() + rows));
        if (owner.get(p) == next()) {
            part.close();
        } else {
            out.toReplica(next(), new StageCommand.ReplicaWeights(m.pass(), p.name(), m.row(), TensorPayload.of(part)), m.pass());
        }
        TiedRows arrived = awaited.computeIfAbsent(p, k -> new TiedRows(p.value().rows()));
        if (arrived.arrived(rows)) awaited.remove(p);
    }

    /** Whether, of what was contributed, every sum was passed on (or settled, at its owner) and every new value taken. */
    boolean settled() {
        return partials.isEmpty() && awaited.isEmpty();
    }

    private Parameter parameter(String name) {
        Parameter p = byName.get(name);
        if (p == null) throw new IllegalArgumentException("no parameter " + name + " in this stage");
        return p;
    }

    /** Frees what a failed (or an earlier) pass left. */
    void discard() {
        partials.values().forEach(m -> m.sum.close());
        partials.clear();
        nextReady.clear();
        awaited.clear();
    }

    @Override
    public void close() {
        discard();
    }
}
