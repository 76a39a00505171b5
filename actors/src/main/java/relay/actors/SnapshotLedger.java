package relay.actors;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.apache.pekko.actor.Address;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * Which node's host holds which stage's snapshot of which step, as the holders report it, and what a lost node
 * took with it. Two steps matter: the newest that every holder asked holds whole for every stage (holders may
 * forget older ones), and the newest that every stage still has a live holder of (where a run goes on from
 * after a lost node).
 */
final class SnapshotLedger {
    /** Steps remembered beyond the newest whole one: snapshots skipped or still arriving. */
    static final int MAX_OPEN = 16;

    private final int stages;
    /** By step, for each stage: the holders asked to hold it, and those that reported it whole. */
    private final TreeMap<Long, List<Set<ActorRef<StageHost.Command>>>> asked = new TreeMap<>(), held = new TreeMap<>();
    private long whole = -1;

    SnapshotLedger(int stages) {
        this.stages = stages;
    }

    /** The snapshot of {@code step} is being taken, each stage's by these holders. */
    void taking(long step, List<List<ActorRef<StageHost.Command>>> holders) {
        List<Set<ActorRef<StageHost.Command>>> a = new ArrayList<>(), h = new ArrayList<>();
        for (List<ActorRef<StageHost.Command>> l : holders) {
            a.add(new HashSet<>(l));
            h.add(new HashSet<>());
        }
        asked.put(step, a);
        held.put(step, h);
        while (asked.size() > MAX_OPEN) forget(asked.firstKey());
    }

    void held(StageEvent.SnapshotHeld e) {
        List<Set<ActorRef<StageHost.Command>>> h = held.get(e.step());
        if (h == null) return;
        h.get(e.stage()).add(e.holder());
        for (int s = 0; s < stages; s++) if (!h.get(s).containsAll(asked.get(e.step()).get(s))) return;
        whole = Math.max(whole, e.step());
        while (asked.firstKey() < whole) forget(asked.firstKey());
    }

    /** The newest step whose snapshot every holder has whole (−1: none yet): older ones may go. */
    long whole() {
        return whole;
    }

    /** A node is gone, and the snapshots its host held with it. */
    void lost(Address node) {
        for (List<Set<ActorRef<StageHost.Command>>> h : held.values()) for (Set<ActorRef<StageHost.Command>> s : h) {
            s.removeIf(r -> r.path().address().equals(node));
        }
    }

    /** The newest step every stage has a live holder of, as one {@link StageEvent.SnapshotHeld} per stage; empty if none. */
    List<StageEvent.SnapshotHeld> recovery() {
        for (Map.Entry<Long, List<Set<ActorRef<StageHost.Command>>>> e : held.descendingMap().entrySet()) {
            List<StageEvent.SnapshotHeld> point = new ArrayList<>();
            for (int s = 0; s < stages && !e.getValue().get(s).isEmpty(); s++) {
                point.add(new StageEvent.SnapshotHeld(s, e.getKey(), e.getValue().get(s).iterator().next()));
            }
            if (point.size() == stages) return point;
        }
        return List.of();
    }

    private void forget(long step) {
        asked.remove(step);
        held.remove(step);
    }
}
