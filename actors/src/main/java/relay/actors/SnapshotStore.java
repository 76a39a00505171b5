package relay.actors;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import relay.stages.memory.Category;
import relay.stages.memory.MemoryLedger;

/**
 * The snapshots a node holds in its memory: for each stage of its own and of the node before it in the ring, the
 * newest complete snapshots by step, and the one arriving. Everything held is counted as {@link Category#SNAPSHOTS}.
 * A snapshot arriving for a step drops that stage's snapshots of later steps (the run went back past them) and of
 * steps before its {@code keepFrom} (every holder has a newer one whole).
 */
final class SnapshotStore {
    /** One stage's snapshot of one step: the weights it updates and its optimizer state, in parts. */
    record Snapshot(long step, List<TensorPart> weights, List<TensorPart> state) {
        long bytes() {
            long floats = 0;
            for (TensorPart p : weights) floats += p.values().length;
            for (TensorPart p : state) floats += p.values().length;
            return floats * Float.BYTES;
        }
    }

    private final Map<Integer, TreeMap<Long, Snapshot>> held = new HashMap<>();
    private final Map<Integer, Snapshot> arriving = new HashMap<>();
    private final MemoryLedger ledger = new MemoryLedger();

    /** Takes a part of a stage's snapshot; returns whether that snapshot is now whole. */
    boolean take(StageHost.HoldSnapshot m) {
        Snapshot a = arriving.get(m.stage());
        if (a == null || a.step() != m.step()) {
            if (a != null) release(a);
            a = new Snapshot(m.step(), new ArrayList<>(), new ArrayList<>());
            arriving.put(m.stage(), a);
        }
        (m.state() ? a.state() : a.weights()).addAll(m.parts());
        long bytes = 0;
        for (TensorPart p : m.parts()) bytes += (long) p.values().length * Float.BYTES;
        ledger.allocated(Category.SNAPSHOTS, bytes);
        if (!m.last()) return false;
        arriving.remove(m.stage());
        TreeMap<Long, Snapshot> steps = held.computeIfAbsent(m.stage(), s -> new TreeMap<>());
        List<Long> gone = new ArrayList<>(steps.tailMap(m.step(), true).keySet());
        gone.addAll(steps.headMap(m.keepFrom(), false).keySet());
        for (long step : gone) release(steps.remove(step));
        steps.put(m.step(), a);
        return true;
    }

    /** The stage's whole snapshot of that step, or null. */
    Snapshot get(int stage, long step) {
        TreeMap<Long, Snapshot> steps = held.get(stage);
        return steps == null ? null : steps.get(step);
    }

    /** The steps held whole of a stage. */
    Set<Long> steps(int stage) {
        return held.containsKey(stage) ? Set.copyOf(held.get(stage).keySet()) : Set.of();
    }

    MemoryLedger ledger() {
        return ledger;
    }

    private void release(Snapshot s) {
        ledger.released(Category.SNAPSHOTS, s.bytes());
    }
}
