package relay.stages.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class MemoryLedgerTest {

    @Test
    void currentAndPeakFollowAnAllocationSequenceExactly() {
        MemoryLedger m = new MemoryLedger();
        m.allocated(Category.PARAMETERS, 400);
        m.allocated(Category.ACTIVATIONS, 100);
        m.allocated(Category.ACTIVATIONS, 50);
        m.released(Category.ACTIVATIONS, 100);
        m.allocated(Category.GRADIENTS, 30);
        m.allocated(Category.ACTIVATIONS, 20);
        m.released(Category.GRADIENTS, 30);
        assertEquals(400, m.current(Category.PARAMETERS));
        assertEquals(70, m.current(Category.ACTIVATIONS));
        assertEquals(150, m.peak(Category.ACTIVATIONS));
        assertEquals(30, m.peak(Category.GRADIENTS));
        assertEquals(0, m.current(Category.GRADIENTS));
        // Totals: 400, 500, 550 (peak), 450, 480, 500, 470.
        assertEquals(550, m.peakTotal());
        assertEquals(470, m.currentTotal());
        m.resetPeaks();
        assertEquals(70, m.peak(Category.ACTIVATIONS));
        assertEquals(470, m.peakTotal());
    }

    @Test
    void releasingMoreThanHeldIsAnError() {
        MemoryLedger m = new MemoryLedger();
        m.allocated(Category.WORKSPACE, 10);
        assertThrows(IllegalStateException.class, () -> m.released(Category.WORKSPACE, 11));
        assertThrows(IllegalStateException.class, () -> m.released(Category.GRADIENTS, 1));
    }
}
