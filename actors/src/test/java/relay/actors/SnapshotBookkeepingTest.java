package relay.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import relay.stages.memory.Category;

/**
 * What a node's snapshot store keeps and forgets, and what the coordinator's ledger of holders makes of their
 * reports: counted against hand-worked cases.
 */
class SnapshotBookkeepingTest {
    static ActorTestKit kit, other;

    @BeforeAll
    static void start() {
        kit = ActorTestKit.create();
        other = ActorTestKit.create("other-node");
    }

    @AfterAll
    static void stop() {
        kit.shutdownTestKit();
        other.shutdownTestKit();
    }

    private static StageHost.HoldSnapshot part(int stage, long step, long keepFrom, boolean state, int floats, boolean last) {
        return new StageHost.HoldSnapshot(stage, step, keepFrom, state, List.of(new TensorPart("t" + floats, new int[] {floats}, 0,
                new float[floats])), last, null);
    }

    @Test
    void aStoreKeepsWholeSnapshotsCountsTheirBytesAndForgetsWhatIsNoLongerNeeded() {
        SnapshotStore store = new SnapshotStore();
        assertTrue(!store.take(part(0, 1, -1, false, 10, false)));
        assertTrue(store.take(part(0, 1, -1, true, 5, true)));
        assertEquals(15 * 4, store.ledger().current(Category.SNAPSHOTS));
        assertEquals(10, store.get(0, 1).weights().get(0).values().length);
        assertTrue(store.take(part(0, 2, -1, true, 3, true)));
        assertEquals(18 * 4, store.ledger().current(Category.SNAPSHOTS), "step 1 stays until a newer one is whole everywhere");
        assertTrue(store.take(part(0, 3, 2, true, 4, true)));
        assertEquals(List.of(2L, 3L), store.steps(0).stream().sorted().toList(), "before keepFrom 2 goes");
        assertEquals(7 * 4, store.ledger().current(Category.SNAPSHOTS));
        // The run went back to step 2 and takes it again: what it held of later steps is of a past that no longer happens.
        assertTrue(store.take(part(0, 2, 2, true, 6, true)));
        assertEquals(List.of(2L), store.steps(0).stream().toList());
        assertEquals(6 * 4, store.ledger().current(Category.SNAPSHOTS));
        // A snapshot cut off mid-way is dropped when the next one begins.
        store.take(part(1, 4, -1, false, 8, false));
        assertEquals(14 * 4, store.ledger().current(Category.SNAPSHOTS));
        store.take(part(1, 5, -1, false, 2, true));
        assertEquals(8 * 4, store.ledger().current(Category.SNAPSHOTS));
        assertNull(store.get(1, 4));
        assertNotNull(store.get(1, 5));
    }

    @Test
    void theLedgerFindsTheNewestStepEveryStageStillHasAHolderOf() {
        ActorRef<StageHost.Command> a = kit.<StageHost.Command>createTestProbe().getRef(), b = other.<StageHost.Command>createTestProbe().getRef();
        SnapshotLedger ledger = new SnapshotLedger(2);
        ledger.taking(1, List.of(List.of(a, b), List.of(b, a)));
        ledger.held(new StageEvent.SnapshotHeld(0, 1, a));
        ledger.held(new StageEvent.SnapshotHeld(1, 1, b));
        assertEquals(-1, ledger.whole(), "not yet whole at every holder");
        assertEquals(1, ledger.recovery().get(0).step(), "but every stage has a holder");
        ledger.held(new StageEvent.SnapshotHeld(0, 1, b));
        ledger.held(new StageEvent.SnapshotHeld(1, 1, a));
        assertEquals(1, ledger.whole());
        ledger.taking(2, List.of(List.of(a, b), List.of(b, a)));
        ledger.held(new StageEvent.SnapshotHeld(0, 2, a));
        ledger.held(new StageEvent.SnapshotHeld(0, 2, b));
        assertEquals(1, ledger.recovery().get(0).step(), "stage 1's copy of step 2 has not arrived anywhere");
        ledger.held(new StageEvent.SnapshotHeld(1, 2, b));
        assertEquals(2, ledger.recovery().get(0).step());
        // b's node is lost: stage 1 of step 2 was held there only; step 1 is whole on a.
        ledger.lost(b.path().address());
        List<StageEvent.SnapshotHeld> point = ledger.recovery();
        assertEquals(List.of(1L, 1L), point.stream().map(StageEvent.SnapshotHeld::step).toList());
        assertTrue(point.stream().allMatch(h -> h.holder().equals(a)));
        ledger.lost(a.path().address());
        assertTrue(ledger.recovery().isEmpty(), "both holders lost: no snapshot survives");
    }
}
