package relay.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import relay.deploy.train.Checkpoint;

/**
 * A signal in each phase of a run, sent to relay train in a JVM of its own: while its tokenizer is trained
 * (nothing written yet: it ends at once), at its first step (it stops after the step, checkpointed), and a
 * SIGKILL while a checkpoint is half written. Each ends as it says, leaves no partial file once the run goes
 * on, and the run gone on with ends exactly where an uninterrupted one does. (A signal after the last step:
 * {@link StopSignalTest}.)
 */
class SignalPhasesTest {
    private static final int STEPS = 30;

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 3, unit = TimeUnit.MINUTES)
    void aStopWhileTheTokenizerIsTrainedEndsAtOnceWritingNothing() throws Exception {
        Path log = dir.resolve("log.txt"), out = dir.resolve("runs");
        // The default corpus: its tokenizer takes seconds to train.
        Process p = RelayProcess.start(dir, log, "train", "--steps", "2", "--out", out.toString());
        try {
            awaitOutput(p, log, "training a byte-level BPE tokenizer");
            p.destroy();
            assertTrue(p.waitFor(30, TimeUnit.SECONDS), "ends within seconds");
            String printed = Files.readString(log, StandardCharsets.UTF_8);
            assertEquals(143, p.exitValue(), printed);
            assertTrue(printed.strip().endsWith("relay: stopped by a signal while the run was being prepared; nothing was written: run the "
                    + "same command again"), printed);
            assertFalse(printed.contains("Exception"), printed);
            assertTrue(!Files.exists(out) || list(out).isEmpty(), "no run directory");
        } finally {
            p.destroyForcibly();
        }
    }

    @Test
    @Timeout(value = 4, unit = TimeUnit.MINUTES)
    void aStopAtTheFirstStepCheckpointsItAndTheRunGoesOnExactly() throws Exception {
        Path run = dir.resolve("run"), log = dir.resolve("log.txt");
        Process p = RelayProcess.start(dir, log, command(run));
        try {
            awaitOutput(p, log, "training on the");
            p.destroy();
            assertTrue(p.waitFor(120, TimeUnit.SECONDS), "exits after SIGTERM");
            String printed = Files.readString(log, StandardCharsets.UTF_8);
            assertEquals(143, p.exitValue(), printed);
            Matcher m = Pattern.compile("stopped by a signal after step (\\d+) of " + STEPS + "; checkpoint \\S+; go on with: relay train "
                    + "--resume " + Pattern.quote(run.toString())).matcher(printed);
            assertTrue(m.find(), printed);
            assertTrue(Files.isRegularFile(run.resolve("checkpoints/step-" + m.group(1) + "/manifest.json")));
        } finally {
            p.destroyForcibly();
        }
        goesOnExactly(run);
    }

    @Test
    @Timeout(value = 4, unit = TimeUnit.MINUTES)
    void aKillWhileACheckpointIsWrittenLosesNothingButItsSteps() throws Exception {
        Path run = dir.resolve("run"), log = dir.resolve("log.txt");
        Process p = RelayProcess.start(dir, log, command(run));
        try {
            // The stages write a checkpoint while the next steps run: a directory without its manifest is one being written.
            await(p, () -> incomplete(run) && complete(run) > 0);
            p.destroyForcibly();
            assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        } finally {
            p.destroyForcibly();
        }
        goesOnExactly(run);
    }

    /** The same command, run again in this JVM, ends where the run that was never stopped ends, with nothing partial left. */
    private void goesOnExactly(Path run) throws IOException {
        StringWriter err = new StringWriter();
        assertEquals(0, Cli.run(err, command(run)), err::toString);
        Path whole = dir.resolve("whole");
        assertEquals(0, Cli.run(err, command(whole)), err::toString);
        assertNull(Checkpoint.difference(whole.resolve("checkpoints/step-" + STEPS), run.resolve("checkpoints/step-" + STEPS)));
        assertEquals(losses(whole), losses(run));
        assertFalse(incomplete(run), "no checkpoint left half written");
        try (Stream<Path> all = Files.walk(run)) {
            assertEquals(List.of(), all.filter(f -> f.getFileName().toString().endsWith(".tmp")).toList());
        }
    }

    private String[] command(Path run) throws IOException {
        Path corpus = dir.resolve("corpus.txt");
        if (!Files.exists(corpus)) {
            StringBuilder sb = new StringBuilder();
            for (int i = 0; i < 60; i++) sb.append("And the evening and the morning were the ").append(i % 5).append(" day.\n");
            Files.writeString(corpus, sb.toString());
        }
        return new String[] {"train", "--model", "llama-tiny", "--data", corpus.toString(), "--steps", String.valueOf(STEPS), "--run",
                run.toString(), "batch=2", "seq=16", "microbatches=2", "devices=2", "checkpoint-every=1", "keep-checkpoints=2",
                "eval-every=10", "trace-steps=0", "eval-sequences=2", "validation-fraction=0.1"};
    }

    private static boolean incomplete(Path run) {
        return checkpoints(run).stream().anyMatch(c -> !Files.isRegularFile(c.resolve("manifest.json")));
    }

    private static long complete(Path run) {
        return checkpoints(run).stream().filter(c -> Files.isRegularFile(c.resolve("manifest.json"))).count();
    }

    private static List<Path> checkpoints(Path run) {
        try (Stream<Path> s = Files.list(run.resolve("checkpoints"))) {
            return s.toList();
        } catch (IOException e) {
            return List.of();
        }
    }

    private static void awaitOutput(Process p, Path log, String text) throws Exception {
        await(p, () -> {
            try {
                return Files.readString(log, StandardCharsets.UTF_8).contains(text);
            } catch (IOException e) {
                return false;
            }
        });
    }

    private static void await(Process p, BooleanSupplier condition) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
        while (!condition.getAsBoolean()) {
            assertTrue(p.isAlive() && System.nanoTime() < deadline, "the moment to signal never came");
            Thread.sleep(2);
        }
    }

    private static List<String> list(Path d) throws IOException {
        try (Stream<Path> s = Files.list(d)) {
            return s.map(f -> f.getFileName().toString()).toList();
        }
    }

    private static List<String> losses(Path run) throws IOException {
        return Files.readAllLines(run.resolve("metrics.jsonl")).stream().map(l -> l.replaceAll(".*\"loss\":([^,]+),.*", "$1")).toList();
    }
}
