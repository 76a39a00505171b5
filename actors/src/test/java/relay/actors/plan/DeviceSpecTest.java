package relay.actors.plan;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class DeviceSpecTest {
    private static DeviceSpec parse(String s) {
        return DeviceSpec.parse(s, 936e9, 25e9, 12.5e9, 1L << 34);
    }

    @Test
    void countsMemoryAndSpeed() {
        DeviceSpec d = parse("8x24GiB");
        assertEquals(1, d.nodes());
        assertEquals(8, d.devices());
        assertEquals(24L << 30, d.memoryBytes());
        assertEquals(DeviceSpec.DEFAULT_FLOPS, d.roofline().flops());
        DeviceSpec h = parse("2x4:80GB@790TFLOPS");
        assertEquals(2, h.nodes());
        assertEquals(4, h.perNode());
        assertEquals(80_000_000_000L, h.memoryBytes());
        assertEquals(790e12, h.roofline().flops(), 1);
        assertEquals(71e12, parse("8x24gib@71tflops").roofline().flops(), 1);
        assertTrue(parse("3xcpu").cpu());
        assertEquals(3, parse("3xcpu").devices());
    }

    @Test
    void sendsCrossTheBusInANodeAndTheLinkBetweenNodes() {
        DeviceSpec h = parse("2x2:80GiB");
        assertEquals(1e9 / 25e9, h.sendSeconds(0, 1e9), 1e-12);
        assertEquals(1e9 / 12.5e9, h.sendSeconds(1, 1e9), 1e-12);
        assertEquals(0, parse("2xcpu").sendSeconds(0, 1e9));
        assertEquals(3, h.withNodes(3).nodes());
    }

    @Test
    void refusesWhatItCannotRead() {
        for (String bad : new String[] {"8x24", "8GiB", "x24GiB", "8x24GiB@fast", "0x24GiB", "8x0GiB"}) {
            assertThrows(IllegalArgumentException.class, () -> parse(bad), bad);
        }
    }
}
