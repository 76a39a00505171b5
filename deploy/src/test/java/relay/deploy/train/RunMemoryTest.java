package relay.deploy.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.typesafe.config.Config;
import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;

/**
 * A run's memory planned before it starts: what its devices' ledgers then count, and a run that cannot fit in what
 * the machine has (given here, not this machine's) is refused naming both figures, before anything is prepared.
 */
class RunMemoryTest {
    private static final long MIB = 1L << 20, GIB = 1L << 30;
    /** llama-tiny's parameters, from its shape: embedding and head 512 × 128; per block q and o 128 × 128, k and v 128 × 64,
     *  gate, up and down 128 × 352, two norms of 128; the final norm. */
    private static final long TINY = 2 * 512 * 128 + 4 * (2 * 128 * 128 + 2 * 128 * 64 + 3 * 128 * 352 + 2 * 128) + 128;

    @TempDir
    static Path dir;

    static Path corpus;

    @BeforeAll
    static void files() throws Exception {
        corpus = SmallRuns.corpus(dir);
    }

    @ParameterizedTest
    @ValueSource(strings = {"batch = 4, microbatches = 1", "batch = 4, microbatches = 1, optimizer = adamw, lisa.gamma = 0",
        "batch = 8, microbatches = 4, optimizer = lomo, mode = eager, schedule = gpipe, recompute = true"})
    void thePipelinesPlanIsWhatItsLedgersCount(String given) throws Exception {
        Config settings = SmallRuns.settings(corpus, "llama-tiny", given);
        Map<Category, Long> planned = plan(settings), counted = counted(settings, "pipeline-" + given.hashCode());
        for (Category c : Category.values()) {
            if (c != Category.ACTIVATIONS) assertEquals(counted.get(c), planned.get(c), c.key());
        }
        // One microbatch: the same activations exactly. With several in flight an activation sent on is counted by its
        // sender until the receiver takes it, so the peaks may differ by a message (a microbatch of 16-token sequences of
        // 128 floats) a microbatch; GPipe with recompute holds only the blocks' inputs, so timing can move no more than
        // that. Under 1F1B a device on a loaded machine may run a forward ahead of the plan's and hold a block's saved
        // activations more (seen once with another test run beside this one), so those cases take one microbatch.
        TrainConfig c = TrainConfig.from(settings);
        long message = (long) c.microbatchSize() * 16 * 128 * Float.BYTES;
        long allowed = c.pipeline().microbatches() == 1 ? 0 : c.pipeline().microbatches() * message;
        assertTrue(Math.abs(planned.get(Category.ACTIVATIONS) - counted.get(Category.ACTIVATIONS)) <= allowed,
                planned + " vs " + counted);
    }

    @Test
    void adamWInExactModeHoldsEveryGradientAndTwoMoments() {
        Map<Category, Long> planned = plan(SmallRuns.settings(corpus, "llama-tiny", "mode = exact", "optimizer = adamw", "lisa.gamma = 0"));
        assertEquals(4 * TINY, planned.get(Category.PARAMETERS));
        assertEquals(4 * TINY, planned.get(Category.GRADIENTS));
        assertEquals(8 * TINY, planned.get(Category.OPTIMIZER_STATE));
    }

    @Test
    void theLoopsPlanIsWhatItsLedgerCountsAndItsEvaluationCopy() throws Exception {
        Config settings = SmallRuns.settings(corpus, "llama-tiny", "optimizer = sgd");
        Map<Category, Long> planned = plan(settings), counted = counted(settings, "loop");
        assertEquals(4 * TINY, counted.get(Category.PARAMETERS));
        assertEquals(2 * 4 * TINY, planned.get(Category.PARAMETERS), "the model and its evaluation copy");
        assertEquals(counted.get(Category.GRADIENTS), planned.get(Category.GRADIENTS));
        assertEquals(4 * TINY, planned.get(Category.GRADIENTS), "classic SGD holds every gradient");
        assertTrue(planned.get(Category.ACTIVATIONS) >= counted.get(Category.ACTIVATIONS), planned + " vs " + counted);
    }

    @Test
    void aRunBeyondTheMachinesMemoryIsRefusedNamingBothFigures() {
        TrainConfig c = TrainConfig.from(SmallRuns.settings(corpus, "llama-tiny", "mode = exact", "optimizer = adamw", "lisa.gamma = 0"));
        ModelConfig cfg = ModelConfig.named("llama-tiny");
        // Parameters, gradients and two moments as tensors (no LISA: every block trains), and the parameters and moments
        // copied at a checkpoint.
        long atLeast = 4 * TINY * (4 + 3);
        String said = assertThrows(IllegalArgumentException.class, () -> RunMemory.check(c, cfg, 0, new RunMemory.Room(8 * MIB, GIB)))
                .getMessage();
        assertTrue(said.contains("and this machine has 8.0 MiB available: "), said);
        assertTrue(megabytes(said, "the run needs ") * MIB >= atLeast - MIB / 10, said);

        String heap = assertThrows(IllegalArgumentException.class, () -> RunMemory.check(c, cfg, 0, new RunMemory.Room(GIB, 8 * MIB)))
                .getMessage();
        assertTrue(heap.contains("into the Java heap, which may grow to 8.0 MiB here: give it more, e.g. RELAY_JAVA_OPTS=-Xmx"), heap);
        assertTrue(megabytes(heap, "weights and optimizer state (") * MIB >= 4 * TINY * 3 - MIB / 10, heap);

        RunMemory.check(c, cfg, 0, new RunMemory.Room(GIB, GIB));
    }

    @Test
    void aHugeBatchOfTheDefaultModelIsRefusedBeforeAnythingIsPrepared() {
        TrainConfig c = TrainConfig.from(SmallRuns.settings(corpus, "llama-train", "batch = 4096", "seq = 512", "microbatches = 4"));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        String said = assertThrows(IllegalArgumentException.class,
                () -> RunInputs.prepare(c, null, why -> { }, new RunMemory.Room(2 * GIB, 2 * GIB), new PrintStream(out, true))).getMessage();
        // The head's logits for one microbatch alone: 1024 sequences of 512 tokens, each of 2,048 floats.
        long logits = 1024L * 512 * 2048 * Float.BYTES;
        Matcher m = Pattern.compile("the run needs (\\d+\\.\\d) GiB of memory as planned \\(activations [0-9.]+ GiB of it, .*\\) "
                + "and this machine has 2\\.0 GiB available: lower batch or seq, or raise microbatches, or set recompute=true").matcher(said);
        assertTrue(m.matches(), said);
        assertTrue(Double.parseDouble(m.group(1)) * GIB >= logits, said);
        assertEquals("", out.toString(), "refused before the tokenizer is trained or the corpus read");
    }

    /** The number of MiB (or GiB) that follows {@code after}, in MiB. */
    private static double megabytes(String said, String after) {
        Matcher m = Pattern.compile(Pattern.quote(after) + "(\\d+\\.\\d) (MiB|GiB)").matcher(said);
        assertTrue(m.find(), said);
        return Double.parseDouble(m.group(1)) * (m.group(2).equals("GiB") ? 1024 : 1);
    }

    private static Map<Category, Long> plan(Config settings) {
        TrainConfig c = TrainConfig.from(settings);
        return RunMemory.plan(c, ModelConfig.named(c.model().name()), 0).tensors();
    }

    /** Each category's peak over the steps of a real run with these settings, as its metrics.jsonl has them. */
    private static Map<Category, Long> counted(Config settings, String name) throws Exception {
        Path run = TrainingRun.run(TrainConfig.from(settings), settings, new PrintStream(OutputStream.nullOutputStream()), null,
                dir.resolve(name)).directory();
        Map<Category, Long> peaks = new EnumMap<>(Category.class);
        for (String line : Files.readAllLines(run.resolve("metrics.jsonl"))) {
            JsonObject bytes = JsonParser.parseString(line).getAsJsonObject().getAsJsonObject("peak_bytes");
            for (Category c : Category.values()) peaks.merge(c, bytes.get(c.key()).getAsLong(), Math::max);
        }
        return peaks;
    }
}
