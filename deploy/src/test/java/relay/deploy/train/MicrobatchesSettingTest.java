package relay.deploy.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * microbatches = auto (the default): 4 where 4 divides the batch into microbatches that split over the replicas, else
 * the most below that do — so a batch the default cannot divide is not refused; a number is taken as given.
 */
class MicrobatchesSettingTest {
    @TempDir
    Path dir;

    private int microbatches(String... given) throws IOException {
        return TrainConfig.from(SmallRuns.settings(SmallRuns.corpus(dir), "llama-tiny", given)).pipeline().microbatches();
    }

    private static String batch(int b) {
        return "batch = " + b;
    }

    @Test
    void autoTakesTheMostUpToFourThatDivideTheBatchOverTheReplicas() throws IOException {
        // Each against a plain search over every count: the most m ≤ 4 with batch % m == 0 and (batch / m) % replicas == 0.
        for (int replicas = 1; replicas <= 3; replicas++) {
            for (int b = replicas; b <= 24; b += replicas) {
                int expected = 1;
                for (int m = 1; m <= 4; m++) if (b % m == 0 && (b / m) % replicas == 0) expected = m;
                assertEquals(expected, microbatches(batch(b), "replicas = " + replicas, "microbatches = auto"), "batch " + b + ", " + replicas + " replicas");
            }
        }
        assertEquals(4, microbatches(batch(8), "microbatches = auto"), "the default run's batch keeps its 4");
        assertEquals(2, microbatches(batch(2), "microbatches = auto"));
        assertEquals(3, microbatches(batch(6), "microbatches = auto"));
    }

    @Test
    void aNumberIsTakenAsGivenAndAnAutoThatCannotSplitOverTheReplicasIsExplained() throws IOException {
        assertEquals(2, microbatches(batch(8), "microbatches = 2"));
        String why = assertThrows(IllegalArgumentException.class, () -> microbatches(batch(3), "replicas = 2", "microbatches = auto"))
                .getMessage();
        assertTrue(why.contains("relay.train.replicas must divide each microbatch's 3 sequences"), why);
        why = assertThrows(IllegalArgumentException.class, () -> microbatches(batch(8), "microbatches = 3")).getMessage();
        assertTrue(why.contains("relay.train.microbatches must divide batch 8, not 3"), why);
    }
}
