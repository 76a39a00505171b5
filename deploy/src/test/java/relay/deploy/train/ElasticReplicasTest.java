package relay.deploy.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;

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
        assertSame(c, TrainingRun.onWorkers(c, 4), "every worker there");
        assertEquals(2, TrainingRun.onWorkers(c, 3).pipeline().replicas(), "3 workers of 4 would hold 3 replicas, but 8 shares do not split in 3");
        assertEquals(2, TrainingRun.onWorkers(c, 2).pipeline().replicas());
        assertEquals(1, TrainingRun.onWorkers(c, 1).pipeline().replicas());
        TrainConfig one = config("mode = exact", "batch = 4", "microbatches = 2", "nodes = 3");
        assertSame(one, TrainingRun.onWorkers(one, 1), "one replica has nothing to shrink");
    }
}
