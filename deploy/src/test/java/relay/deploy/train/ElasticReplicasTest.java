package relay.deploy.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a replicated run goes on with when it has fewer workers than it began with: fewer replicas and the same global
 * batch — in exact mode more microbatches of the same share each (gradient accumulation), in eager mode the same
 * microbatches in larger shares (its update per microbatch stays the whole microbatch's).
 */
class ElasticReplicasTest {
    @TempDir
    Path dir;

    private TrainConfig config(String... given) throws IOException {
        return TrainConfig.from(SmallRuns.settings(SmallRuns.corpus(dir), "llama-tiny", given));
    }

    @Test
    void exactModeAccumulatesEagerModeWidensTheShares() throws IOException {
        TrainConfig exact = config("mode = exact", "replicas = 4", "batch = 16", "microbatches = 2", "nodes = 5");
        TrainConfig two = exact.withReplicas(2);
        assertEquals(2, two.pipeline().replicas());
        assertEquals(4, two.pipeline().microbatches());
        assertEquals(exact.replicaMicrobatchSize(), two.replicaMicrobatchSize(), "each replica's share stays");
        assertEquals(exact.run().batch(), two.pipeline().microbatches() * two.microbatchSize(), "the global batch stays");
        assertNull(exact.withReplicas(3), "8 sequences a microbatch of 2 replicas × 2 microbatches make no 3 replicas' shares");
        assertNull(exact.withReplicas(0));

        TrainConfig eager = config("mode = eager", "replicas = 4", "batch = 16", "microbatches = 2", "nodes = 5");
        TrainConfig one = eager.withReplicas(1);
        assertEquals(2, one.pipeline().microbatches(), "the same microbatches");
        assertEquals(8, one.replicaMicrobatchSize(), "the whole microbatch to the replica left");
    }

    @Test
    void theReplicasGoOnAtTheLoadEachWorkerBeganWith() throws IOException {
        TrainConfig c = config("mode = exact", "replicas = 4", "batch = 16", "microbatches = 2", "nodes = 5");
        assertSame(c, TrainingRun.onWorkers(c, 4, 2), "every worker there");
        assertEquals(2, TrainingRun.onWorkers(c, 3, 2).pipeline().replicas(), "3 workers of 4 would hold 3 replicas, but 8 shares do not split in 3");
        assertEquals(2, TrainingRun.onWorkers(c, 2, 2).pipeline().replicas());
        assertEquals(1, TrainingRun.onWorkers(c, 1, 2).pipeline().replicas());
        TrainConfig one = config("mode = exact", "batch = 4", "microbatches = 2", "nodes = 3");
        assertSame(one, TrainingRun.onWorkers(one, 1, 2), "one replica has nothing to shrink");
    }

    /**
     * A placement takes no more workers than devices, so the replicas a run goes on with must give each worker left a
     * device: with one device a replica, 3 workers of 4 keep all 4 replicas (3 do not split the batch, 2 would leave a
     * worker out). Over every small case: the replicas chosen hold every worker and split the batch, and where they are
     * more than the load each worker began with asks, no fewer from that load up would have done.
     */
    @Test
    void everyWorkerLeftHoldsADevice() throws IOException {
        TrainConfig c = config("mode = exact", "replicas = 4", "batch = 16", "microbatches = 2", "nodes = 5", "devices = 1");
        assertEquals(4, TrainingRun.onWorkers(c, 3, 1).pipeline().replicas());
        for (String mode : new String[] {"exact", "eager"}) {
            for (int r = 2; r <= 4; r++) {
                for (int d = 1; d <= 3; d++) {
                    for (int began = 2; began <= r * d; began++) {
                        TrainConfig run = config("mode = " + mode, "replicas = " + r, "devices = " + d, "batch = 24", "microbatches = 2",
                                "nodes = " + (began + 1));
                        for (int workers = 1; workers < began; workers++) {
                            int k = TrainingRun.onWorkers(run, workers, d).pipeline().replicas();
                            String what = mode + ", " + r + " replicas × " + d + " devices on " + began + " workers, " + workers + " left";
                            assertTrue(k * d >= workers, what + ": " + k + " replicas leave a worker without a device");
                            assertTrue(k == r || run.withReplicas(k) != null, what);
                            int wanted = Math.max((workers + d - 1) / d, r * workers / began);
                            for (int fewer = wanted; fewer < k; fewer++) {
                                assertNull(run.withReplicas(fewer), what + ": " + fewer + " replicas would have done");
                            }
                        }
                    }
                }
            }
        }
    }
}
