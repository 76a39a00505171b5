package relay.stages.check;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import relay.stages.memory.Category;
import relay.stages.tensor.cpu.CpuDevice;

/** Every layer and block against float64 finite differences, on one and on two threads. */
class SelfTestTest {
    private static CpuDevice device;

    @BeforeAll
    static void open() {
        device = new CpuDevice("cpu-check", 2);
    }

    @AfterAll
    static void close() {
        device.close();
    }

    static Stream<String> checks() {
        return SelfTest.names().stream();
    }

    @ParameterizedTest
    @MethodSource("checks")
    void matchesFloat64(String name) {
        GradientCheck.Result r = new SelfTest(device, 42).run(name);
        assertTrue(r.pass(), () -> name + ": max relative error " + r.maxRelErr() + " at " + r.worst());
        for (Category c : Category.values()) {
            if (c != Category.PARAMETERS) assertEquals(0, device.memory().current(c), name + " leaked " + c.key());
        }
    }
}
