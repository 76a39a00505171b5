package relay.actors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import relay.stages.memory.Category;
import relay.stages.tensor.Tensor;
import relay.stages.tensor.cpu.CpuDevice;

/** A tied matrix split into parts of whole rows comes out whole and in order, and the receiver's count knows when. */
class TiedRowsTest {
    @Test
    void partsOfWholeRowsCoverTheMatrixOnceAndTheCountEndsWithTheLast() {
        try (CpuDevice d = new CpuDevice("tied", 1); Tensor m = d.allocate(Category.GRADIENTS, 10, 3)) {
            float[] values = new float[30];
            for (int i = 0; i < values.length; i++) values[i] = i;
            m.copyFrom(values);
            List<Integer> firstRows = new ArrayList<>();
            float[] joined = new float[30];
            TiedRows count = new TiedRows(10);
            List<Boolean> complete = new ArrayList<>();
            TiedRows.split(m, 7, (row, part) -> {
                try (part) {
                    assertEquals(Category.COMMUNICATION, part.category());
                    assertTrue(part.size() <= 7 && part.cols() == 3);
                    firstRows.add(row);
                    System.arraycopy(part.toArray(), 0, joined, row * 3, (int) part.size());
                    complete.add(count.arrived(part.rows()));
                }
            });
            assertEquals(List.of(0, 2, 4, 6, 8), firstRows);
            assertArrayEquals(values, joined, 0f);
            assertEquals(List.of(false, false, false, false, true), complete);
            // The count starts afresh for the next pass; a row wider than a part still goes, one row at a time.
            assertFalse(count.arrived(4));
            List<Integer> single = new ArrayList<>();
            TiedRows.split(m, 2, (row, part) -> {
                single.add(row);
                part.close();
            });
            assertEquals(10, single.size());
        }
    }
}
