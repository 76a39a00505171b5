package relay.actors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import org.junit.jupiter.api.Test;
import relay.optimizers.Method;

/** How a node's cores are split among its devices: auto gives each device an even share, a number is taken as it is. */
class ThreadsPerDeviceTest {

    @Test
    void autoSplitsANodesCoresEvenlyAmongItsDevices() {
        PipelineConfig.Execution auto = PipelineConfig.defaults(Method.LOMO, 0.1f)
                .withThreadsPerDevice(PipelineConfig.Execution.THREADS_AUTO).execution();
        assertEquals(8, auto.threadsOnNode(16, 2));
        assertEquals(5, auto.threadsOnNode(16, 3), "what does not divide evenly is left over, not oversubscribed");
        assertEquals(16, auto.threadsOnNode(16, 1));
        assertEquals(1, auto.threadsOnNode(2, 4), "more devices than cores: one thread each");
        PipelineConfig.Execution three = PipelineConfig.defaults(Method.LOMO, 0.1f).withThreadsPerDevice(3).execution();
        assertEquals(3, three.threadsOnNode(16, 2), "a number given is each device's whatever the node has");
    }

    /** The devices of a pipeline in this JVM, started with auto, together compute on every core the machine has. */
    @Test
    void aPipelineInOneJvmUsesEveryCore() {
        int cores = Runtime.getRuntime().availableProcessors(), devices = 2;
        try (Pipeline p = Pipeline.start(PipelineEquivalenceTest.LLAMA, 1, PipelineEquivalenceTest.placement(devices),
                PipelineConfig.defaults(Method.LOMO, 0.1f).withThreadsPerDevice(PipelineConfig.Execution.THREADS_AUTO),
                PipelineEquivalenceTest.SERIALIZE)) {
            int[] threads = p.threadsOfDevice();
            int each = Math.max(1, cores / devices);
            assertArrayEquals(new int[] {each, each}, threads);
            if (cores % devices == 0) assertEquals(cores, Arrays.stream(threads).sum(), "all " + cores + " cores are used");
        }
    }
}
