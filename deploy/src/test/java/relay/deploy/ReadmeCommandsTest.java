package relay.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The README's commands as users type them — relative paths, from the directory they trained in and from
 * another — each in a JVM of its own; and the rule of one writer per run directory, against a real second
 * process and one killed with SIGKILL.
 */
class ReadmeCommandsTest {
    @TempDir
    Path dir;

    /** A tiny run's settings; the rest of each command is what the README shows. */
    static final String[] SMALL = {"batch=2", "seq=16", "microbatches=2", "eval-every=2", "checkpoint-every=2", "trace-steps=0",
            "eval-sequences=4", "validation-fraction=0.1"};

    private static String[] args(String[] command, String... more) {
        List<String> all = new ArrayList<>(List.of(command));
        all.addAll(List.of(more));
        return all.toArray(String[]::new);
    }

    private Path corpus(Path home) throws Exception {
        Files.createDirectories(home);
        return Files.writeString(home.resolve("corpus.txt"), "And God said, Let there be light: and there was light.\n".repeat(60));
    }

    private static void ok(RelayProcess.Result r) {
        assertEquals(0, r.code(), r.output());
    }

    @Test
    @Timeout(value = 5, unit = TimeUnit.MINUTES)
    void theReadmesCommandsTakeRelativePathsFromAnyDirectory() throws Exception {
        Path home = dir.resolve("home"), elsewhere = Files.createDirectories(dir.resolve("elsewhere"));
        corpus(home);
        ok(RelayProcess.run(home, args(new String[] {"train", "--model", "llama-tiny", "--data", "corpus.txt", "--steps", "2", "--out", "runs"},
                SMALL)));
        String run;
        try (Stream<Path> runs = Files.list(home.resolve("runs"))) {
            run = runs.findFirst().orElseThrow().getFileName().toString();
        }
        // Resumed from another directory: the run's settings name the corpus by its absolute path.
        ok(RelayProcess.run(elsewhere, "train", "--resume", "../home/runs/" + run, "steps=4"));
        assertEquals(4, Files.readAllLines(home.resolve("runs").resolve(run).resolve("metrics.jsonl")).size());

        ok(RelayProcess.run(home, args(new String[] {"train", "--run", "jobs/a", "--model", "llama-tiny", "--data", "corpus.txt", "--steps",
                "2"}, SMALL)));
        RelayProcess.Result again = RelayProcess.run(elsewhere, "train", "--run", "../home/jobs/a", "steps=4");
        ok(again);
        assertTrue(again.output().contains("resuming"), again.output());
        assertEquals(4, Files.readAllLines(home.resolve("jobs/a/metrics.jsonl")).size());

        RelayProcess.Result generated = RelayProcess.run(elsewhere, "generate", "--model", "../home/runs/" + run, "--prompt", "And God said",
                "--max-tokens", "3");
        ok(generated);
        assertTrue(generated.output().startsWith("And God said"), generated.output());
        RelayProcess.Result evaluated = RelayProcess.run(elsewhere, "eval", "--model", "../home/runs/" + run, "--data",
                "../home/corpus.txt", "--seq", "16");
        ok(evaluated);
        assertTrue(evaluated.output().contains("perplexity"), evaluated.output());
    }

    @Test
    @Timeout(value = 3, unit = TimeUnit.MINUTES)
    void aSecondWriterIsRefusedNamingTheHolderAndAKilledHolderNeverBlocksItsResume() throws Exception {
        Path corpus = corpus(dir), job = dir.resolve("job"), log = dir.resolve("holder.log");
        Process holder = RelayProcess.start(dir, log, args(new String[] {"train", "--run", job.toString(), "--model", "llama-tiny", "--data",
                corpus.toString(), "--steps", "100000"}, "batch=2", "seq=16", "microbatches=2", "checkpoint-every=1", "eval-every=100000",
                "trace-steps=0", "validation-fraction=0.1"));
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
            while (!Files.isDirectory(job.resolve("checkpoints/step-2")) && holder.isAlive() && System.nanoTime() < deadline) Thread.sleep(100);
            assertTrue(holder.isAlive(), Files.readString(log));
            StringWriter err = new StringWriter();
            assertEquals(2, Cli.run(err, "train", "--run", job.toString()));
            assertTrue(err.toString().contains(job + " is in use by another relay train (pid " + holder.pid() + " on "), err.toString());
        } finally {
            holder.destroyForcibly();
            holder.waitFor();
        }
        // SIGKILL left the lock file, but not the lock: the run resumes from its newest complete checkpoint.
        int newest;
        try (Stream<Path> cps = Files.list(job.resolve("checkpoints"))) {
            newest = cps.filter(c -> Files.isRegularFile(c.resolve("manifest.json")))
                    .mapToInt(c -> Integer.parseInt(c.getFileName().toString().substring(5))).max().orElseThrow();
        }
        StringWriter err = new StringWriter();
        assertEquals(0, Cli.run(err, "train", "--run", job.toString(), "steps=" + (newest + 1)), err::toString);
        assertTrue(Files.isRegularFile(job.resolve("checkpoints/step-" + (newest + 1) + "/manifest.json")));
        assertEquals(newest + 1, Files.readAllLines(job.resolve("metrics.jsonl")).size());
    }
}
