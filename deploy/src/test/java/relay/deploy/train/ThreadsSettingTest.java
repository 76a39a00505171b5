package relay.deploy.train;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import relay.actors.PipelineConfig;

/** threads-per-device reaches the pipeline: auto by default (each node's cores ÷ its devices), or the number given. */
class ThreadsSettingTest {
    @TempDir
    Path dir;

    private PipelineConfig.Execution execution(String... given) throws IOException {
        return TrainConfig.from(SmallRuns.settings(SmallRuns.corpus(dir), "llama-tiny", given)).pipelineConfig(0).execution();
    }

    @Test
    void autoByDefaultAndANumberAsGiven() throws IOException {
        PipelineConfig.Execution auto = execution("devices = 2");
        assertEquals(PipelineConfig.Execution.THREADS_AUTO, auto.threadsPerDevice());
        int cores = Runtime.getRuntime().availableProcessors();
        assertEquals(Math.max(1, cores / 2), auto.threadsOnNode(cores, 2), "this machine's cores split over the two devices");
        assertEquals(4, execution("devices = 2", "threads-per-device = 4").threadsPerDevice());
    }
}
