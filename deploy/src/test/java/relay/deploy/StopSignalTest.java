package relay.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * SIGTERM (what a scheduler sends before it kills a job) stops relay train after the step it is in, with a
 * complete checkpoint of that step: nothing done is lost. Runs the command in a JVM of its own.
 */
class StopSignalTest {
    @TempDir
    Path dir;

    @Test
    @Timeout(value = 3, unit = TimeUnit.MINUTES)
    void sigtermCheckpointsTheStepInProgressAndExits() throws Exception {
        Path corpus = dir.resolve("corpus.txt"), out = dir.resolve("runs"), log = dir.resolve("log.txt");
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 60; i++) sb.append("Let there be light: and there was light ").append(i % 9).append(".\n");
        Files.writeString(corpus, sb.toString());
        Process p = RelayProcess.start(dir, log, "train", "--model", "llama-tiny", "--data", corpus.toString(), "--steps", "100000",
                "--out", out.toString(), "batch=2", "seq=16", "microbatches=2", "checkpoint-every=100000", "eval-every=100000",
                "trace-steps=0", "validation-fraction=0.1");
        try {
            Path metrics = awaitMetrics(out, p);
            p.destroy();
            assertTrue(p.waitFor(120, TimeUnit.SECONDS), "exits after SIGTERM");
            String printed = Files.readString(log, StandardCharsets.UTF_8);
            Matcher m = Pattern.compile("stopped by a signal after step (\\d+) of 100000").matcher(printed);
            assertTrue(m.find(), printed);
            int step = Integer.parseInt(m.group(1));
            assertEquals(step, Files.readAllLines(metrics).size(), "every finished step is in metrics.jsonl");
            Path checkpoint = metrics.getParent().resolve("checkpoints/step-" + step);
            assertTrue(Files.isRegularFile(checkpoint.resolve("manifest.json")), "a complete checkpoint of the last step");
            assertTrue(printed.contains("relay train --resume " + metrics.getParent()), printed);
            assertTrue(Files.readString(metrics.getParent().resolve("history.log")).contains("stopped by a signal after step " + step));
        } finally {
            p.destroyForcibly();
        }
    }

    /**
     * A signal that arrives as a run ends — after its last step, while it closes — leaves it finished: exit 0, so that
     * a batch system does not requeue a job that is done.
     */
    @Test
    @Timeout(value = 3, unit = TimeUnit.MINUTES)
    void aSignalAfterTheLastStepLeavesTheRunFinished() throws Exception {
        Path corpus = dir.resolve("corpus.txt"), log = dir.resolve("log.txt");
        Files.writeString(corpus, "Let there be light: and there was light.\n".repeat(60));
        Process p = RelayProcess.start(dir, log, "train", "--model", "llama-tiny", "--data", corpus.toString(), "--steps", "3",
                "--out", dir.resolve("runs").toString(), "batch=2", "seq=16", "microbatches=2", "trace-steps=0", "eval-sequences=2",
                "validation-fraction=0.1");
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
            while (p.isAlive() && System.nanoTime() < deadline && !Files.readString(log, StandardCharsets.UTF_8).contains("done in ")) {
                Thread.sleep(20);
            }
            p.destroy();
            assertTrue(p.waitFor(120, TimeUnit.SECONDS), "exits");
            String printed = Files.readString(log, StandardCharsets.UTF_8);
            assertTrue(printed.contains("done in "), printed);
            assertEquals(0, p.exitValue(), printed);
        } finally {
            p.destroyForcibly();
        }
    }

    /** A worker still waiting to join its coordinator stops at once on SIGTERM, not at the end of its join timeout. */
    @Test
    @Timeout(value = 2, unit = TimeUnit.MINUTES)
    void aJoiningNodeStopsAtOnce() throws Exception {
        Path log = dir.resolve("node.txt");
        // Nothing listens at the coordinator's address: the node waits to join (its timeout is a minute or more).
        Process p = RelayProcess.start(dir, log, "node", "--join", "127.0.0.1:" + LoopbackCluster.freePort(), "--index", "1");
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (p.isAlive() && System.nanoTime() < deadline && !Files.readString(log, StandardCharsets.UTF_8).contains("joining")) {
                Thread.sleep(50);
            }
            long signalled = System.nanoTime();
            p.destroy();
            assertTrue(p.waitFor(30, TimeUnit.SECONDS), "ends within seconds of SIGTERM: " + Files.readString(log, StandardCharsets.UTF_8));
            assertTrue(System.nanoTime() - signalled < TimeUnit.SECONDS.toNanos(30));
            String said = Files.readString(log, StandardCharsets.UTF_8);
            assertTrue(said.contains("stopped before it joined the coordinator"), said);
            assertTrue(!said.contains("could not join"), "one reason, the true one: " + said);
        } finally {
            p.destroyForcibly();
        }
    }

    /** metrics.jsonl of the run once it has a few steps in it. */
    private static Path awaitMetrics(Path out, Process p) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
        while (System.nanoTime() < deadline && p.isAlive()) {
            if (Files.isDirectory(out)) {
                try (Stream<Path> runs = Files.list(out)) {
                    for (Path r : runs.toList()) {
                        Path m = r.resolve("metrics.jsonl");
                        if (Files.isRegularFile(m) && Files.readAllLines(m).size() >= 3) return m;
                    }
                }
            }
            Thread.sleep(100);
        }
        throw new AssertionError("the run did not get going (alive: " + p.isAlive() + ")");
    }
}
