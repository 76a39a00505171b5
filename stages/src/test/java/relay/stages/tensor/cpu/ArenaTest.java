package relay.stages.tensor.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.train.ReferenceTrainer;
import relay.stages.train.SyntheticData;

/** A device's arenas: freed blocks merge and serve other sizes, and a training run's memory stops growing after its first steps. */
class ArenaTest {

    @Test
    void freedNeighboursMergeAndServeALargerBlockWithoutGrowing() {
        Arena arena = new Arena("test", Long.MAX_VALUE);
        try {
            long mib = 1L << 20;
            Arena.Region a = arena.take(10 * mib), b = arena.take(10 * mib), c = arena.take(10 * mib);
            assertEquals(Arena.SLAB, arena.reservedBytes(), "three blocks cut from one slab");
            arena.give(a);
            arena.give(b);
            Arena.Region big = arena.take(20 * mib);
            assertEquals(a.offset(), big.offset(), "the two freed neighbours became one block");
            assertEquals(Arena.SLAB, arena.reservedBytes(), "no new slab for it");
            arena.give(c);
            arena.give(big);
            assertEquals(Arena.SLAB, arena.freeBytes(), "everything merged back into the whole slab");
        } finally {
            arena.clear();
        }
    }

    @Test
    void blocksAreAlignedAndAWholeFreeSlabGoesBackBeyondTheLimit() {
        Arena arena = new Arena("test", 0);
        try {
            Arena.Region odd = arena.take(100), next = arena.take(8);
            assertEquals(0, next.offset() % Arena.ALIGN, "a block after an odd-sized one starts on a cache line");
            arena.give(odd);
            assertEquals(Arena.SLAB, arena.reservedBytes(), "the slab still holds a block");
            arena.give(next);
            assertEquals(0, arena.reservedBytes(), "with no free memory allowed, an empty slab is given back");
            Arena.Region large = arena.take(Arena.SLAB + 1);
            assertTrue(large.bytes() >= Arena.SLAB + 1 && arena.reservedBytes() == large.bytes(), "a large block gets a slab of its size");
        } finally {
            arena.clear();
        }
    }

    /**
     * The memory a training step frees is what the next step's allocations take: the arenas stop growing. The model
     * is sized so a step's memory spans several slabs (attention's probabilities alone are 16 MiB a block).
     */
    @Test
    void aTrainingRunsMemoryStopsGrowingAfterItsFirstSteps() {
        ModelConfig cfg = new ModelConfig(relay.stages.model.Family.LLAMA, 4096, 256, 4, 8, 4, 32, 1024, 256, 1e-5f, 10000.0, false);
        try (CpuDevice d = new CpuDevice("steps", 2); Model m = Model.initialize(cfg, d, 3)) {
            ReferenceTrainer trainer = ReferenceTrainer.sgd(m, 0.01f);
            SyntheticData data = new SyntheticData(cfg.vocabSize(), 4, 256, 0.1, 5);
            for (int i = 0; i < 2; i++) trainer.step(List.of(data.next(), data.next()));
            long settled = d.reservedBytes();
            assertTrue(settled > 3 * Arena.SLAB, "a step spans several slabs: " + settled);
            for (int i = 0; i < 5; i++) trainer.step(List.of(data.next(), data.next()));
            assertEquals(settled, d.reservedBytes(), "later steps reuse what earlier steps freed");
            // Beyond the ledger's peak, no more than a slab per arena (run memory, step memory) that is partly used.
            assertTrue(settled <= d.memory().peakTotal() + 2 * Arena.SLAB, "the arenas hold about the ledger's peak: " + settled
                    + " reserved, " + d.memory().peakTotal() + " at the peak");
        }
    }
}
