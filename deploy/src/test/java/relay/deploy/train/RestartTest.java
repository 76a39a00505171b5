package relay.deploy.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntPredicate;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import relay.stages.train.Batch;

/**
 * A stage that crashes in the middle of a run: the run restarts from its newest checkpoint and ends exactly
 * where a run that never crashed ends. A failure that comes back at the same step ends the run.
 */
class RestartTest {
    @TempDir
    Path dir;

    /**
     * An engine whose step throws when {@code fails} says so for the step() call's number, counted over every engine,
     * and whose validation refuses its batches (an IllegalArgumentException, as for bad input) when {@code refusesValidation}.
     */
    record Faulty(Engine inner, AtomicInteger calls, IntPredicate fails, boolean refusesValidation) implements Engine {
        Faulty(Engine inner, AtomicInteger calls, IntPredicate fails) {
            this(inner, calls, fails, false);
        }

        @Override
        public Step step(List<Batch> microbatches) {
            if (fails.test(calls.incrementAndGet())) throw new IllegalStateException("block-1 (stage 2): injected crash");
            return inner.step(microbatches);
        }

        @Override
        public double validationLoss(List<Batch> batches) {
            if (refusesValidation) throw new IllegalArgumentException("injected refusal");
            return inner.validationLoss(batches);
        }

        @Override
        public Map<String, float[]> optimizerState() {
            return inner.optimizerState();
        }

        @Override
        public java.util.concurrent.CompletableFuture<List<relay.stages.io.CheckpointShard.File>> writeCheckpoint(int step, Path directory, long bytes)
                throws java.io.IOException {
            return inner.writeCheckpoint(step, directory, bytes);
        }

        @Override
        public void restore(Map<String, float[]> state) {
            inner.restore(state);
        }

        @Override
        public boolean writeTrace(Path file) throws java.io.IOException {
            return inner.writeTrace(file);
        }

        @Override
        public String describe() {
            return inner.describe();
        }

        @Override
        public void close() {
            inner.close();
        }
    }

    private Config config() throws Exception {
        Path corpus = dir.resolve("corpus.txt");
        Files.writeString(corpus, "Blessed are the meek: for they shall inherit the earth.\n".repeat(60));
        return ConfigFactory.parseString("relay.train { model = llama-tiny, data = \"" + corpus + "\", steps = 6, batch = 2, seq = 16,"
                + " microbatches = 2, devices = 2, eval-every = 2, checkpoint-every = 2, trace-steps = 0, eval-sequences = 4,"
                + " lisa.gamma = 1, lisa.period = 2, validation-fraction = 0.1, optimizer = adamw }")
                .withFallback(ConfigFactory.load()).resolve();
    }

    private TrainingRun.Summary run(String name, IntPredicate fails, PrintStream out) throws Exception {
        Config c = config();
        AtomicInteger calls = new AtomicInteger();
        return TrainingRun.run(TrainConfig.from(c), c, out, null, dir.resolve(name), e -> new Faulty(e, calls, fails));
    }

    @Test
    void aRunRestartedAfterACrashEndsWhereOneThatNeverCrashedEnds() throws Exception {
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        TrainingRun.Summary whole = run("whole", n -> false, quiet);
        ByteArrayOutputStream said = new ByteArrayOutputStream();
        // The 5th step crashes once: the run restarts from its checkpoint at step 4 and does step 5 again.
        TrainingRun.Summary crashed = run("crashed", n -> n == 5, new PrintStream(said, true, StandardCharsets.UTF_8));
        String printed = said.toString(StandardCharsets.UTF_8);
        assertTrue(printed.contains("step 5 of 6 failed: block-1 (stage 2): injected crash")
                && printed.contains("restarting the run (1 of 2 restarts)") && printed.contains("resuming"), printed);
        assertEquals(whole.trainLoss(), crashed.trainLoss());
        assertEquals(whole.validationLoss(), crashed.validationLoss());
        assertNull(Checkpoint.difference(whole.directory().resolve("checkpoints/step-6"), crashed.directory().resolve("checkpoints/step-6")));
        assertEquals(6, Files.readAllLines(crashed.directory().resolve("metrics.jsonl")).size());
        assertTrue(Files.readString(crashed.directory().resolve("history.log"))
                .matches("(?s).*started.*step 5 of 6 failed: .*injected crash.*restarting \\(1 of 2\\).*resumed at step 4.*finished.*"));
    }

    /** What goes wrong once steps are recorded is a failure of the run (exit 1), even as an IllegalArgumentException (exit 2's type). */
    @Test
    void anInputTypedErrorMidRunIsAFailureOfTheRun() throws Exception {
        Config c = config();
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        TrainingRun.Failed f = assertThrows(TrainingRun.Failed.class, () -> TrainingRun.run(TrainConfig.from(c), c, quiet, null,
                dir.resolve("refusing"), e -> new Faulty(e, new AtomicInteger(), n -> false, true)));
        assertTrue(f.getMessage().contains("the run failed after its first step: injected refusal; go on with: relay train --resume"),
                f.getMessage());
    }

    @Test
    void aFailureThatComesBackAtTheSameStepEndsTheRun() throws Exception {
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        // Step 3 fails, and again after the restart from step 2's checkpoint (the next call).
        TrainingRun.Failed f = assertThrows(TrainingRun.Failed.class, () -> run("broken", n -> n == 3 || n == 4, quiet));
        assertEquals(3, f.step());
        assertTrue(f.getMessage().contains("go on from it with relay train --resume"), f.getMessage());
    }
}
