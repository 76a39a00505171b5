package relay.deploy.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * LISA's γ against the model, before a run starts: a γ given beyond the model's blocks is refused naming the setting,
 * its value, the blocks and the largest γ allowed; the default γ (3) on a model of fewer blocks means every block.
 */
class LisaGammaTest {
    private static final RunMemory.Room ROOMY = new RunMemory.Room(1L << 40, 1L << 40);
    private static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());

    @TempDir
    static Path dir;

    static Path corpus, twoBlocks;

    @BeforeAll
    static void files() throws Exception {
        corpus = SmallRuns.corpus(dir);
        // llama-tiny's shape with two blocks instead of four: a model smaller than the default γ.
        twoBlocks = Files.writeString(dir.resolve("two-blocks.json"), """
                {"model_type": "llama", "vocab_size": 512, "hidden_size": 128, "intermediate_size": 352, "num_hidden_layers": 2,
                 "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256, "rms_norm_eps": 1e-05,
                 "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": false}""");
    }

    private static TrainConfig settings(String model, String... given) {
        return TrainConfig.from(SmallRuns.settings(corpus, model, given));
    }

    private static String refused(TrainConfig c) {
        return assertThrows(IllegalArgumentException.class, () -> RunInputs.prepare(c, null, why -> { }, ROOMY, QUIET)).getMessage();
    }

    @Test
    void aGammaBeyondTheBlocksIsRefusedNamingTheBlocksAndTheMostAllowed() {
        assertEquals("configuration: relay.train.lisa.gamma 9 exceeds the 4 blocks of llama-tiny: LISA trains at most every block, "
                + "lisa.gamma ≤ 4", refused(settings("llama-tiny", "lisa.gamma = 9")));
        assertEquals("configuration: relay.train.lisa.gamma 5 exceeds the 4 blocks of llama-tiny: LISA trains at most every block, "
                + "lisa.gamma ≤ 4", refused(settings("llama-tiny", "optimizer = lisa", "lisa.gamma = 5")));
        RunInputs.prepare(settings("llama-tiny", "lisa.gamma = 4"), null, why -> { }, ROOMY, QUIET);
    }

    @Test
    void theDefaultGammaMeansEveryBlockOfASmallerModel() {
        RunInputs.prepare(settings(twoBlocks.toString()), null, why -> { }, ROOMY, QUIET);
        assertEquals("configuration: relay.train.lisa.gamma 3 exceeds the 2 blocks of " + twoBlocks + ": LISA trains at most every block, "
                + "lisa.gamma ≤ 2", refused(settings(twoBlocks.toString(), "lisa.gamma = 3")));
    }

    @Test
    void aGammaIsNotCheckedWhereLisaIsOff() {
        // RSO trains every block through its subspaces: γ plays no part.
        RunInputs.prepare(settings("llama-tiny", "optimizer = rso", "lisa.gamma = 9"), null, why -> { }, ROOMY, QUIET);
    }
}
