package relay.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import relay.deploy.train.Checkpoint;
import relay.stages.io.FileWrites;

/**
 * A disk that fills up at each kind of write a run makes ends the run with one line naming the file and the
 * cause, exit 1, nothing partial left and the newest complete checkpoint intact; the same command run again
 * once there is room ends exactly where a run that never met a full disk ends. The disk is a stand-in under
 * {@link FileWrites} that fails the n-th write to one file name as a full one does.
 */
class FullDiskTest {
    @TempDir
    static Path shared;
    static Path whole;

    @TempDir
    Path dir;

    /** The run as it ends on a disk that never fills: 6 steps, checkpoints at 3 and 6, traced for 4, evaluated every 2. */
    @BeforeAll
    static void wholeRun() throws IOException {
        whole = shared.resolve("whole");
        StringWriter err = new StringWriter();
        assertEquals(0, Cli.run(err, command(shared, whole, "adalomo")), err::toString);
    }

    @AfterEach
    void realDisk() {
        FileWrites.use(FileWrites.Disk.REAL);
    }

    private static String[] command(Path dir, Path run, String optimizer) throws IOException {
        Path corpus = dir.resolve("corpus.txt");
        if (!Files.exists(corpus)) {
            StringBuilder sb = new StringBuilder();
            for (int i = 0; i < 60; i++) sb.append("And the evening and the morning were the ").append(i % 5).append(" day.\n");
            Files.writeString(corpus, sb.toString());
        }
        return new String[] {"train", "--model", "llama-tiny", "--optimizer", optimizer, "--data", corpus.toString(), "--steps", "6",
                "--run", run.toString(), "batch=2", "seq=16", "microbatches=2", "devices=2", "eval-every=2", "checkpoint-every=3",
                "trace-steps=4", "eval-sequences=4", "validation-fraction=0.1"};
    }

    /**
     * A disk on which writes to a file whose name starts with {@code name} find no space: from its {@code nth} write
     * on (a file written whole, or a log's record), or with {@code nth} 0 in the last checkpoint (step 6).
     */
    private static FileWrites.Disk fullAt(String name, int nth) {
        AtomicInteger writes = new AtomicInteger();
        return new FileWrites.Disk() {
            @Override
            public long free(Path dir) throws IOException {
                return FileWrites.Disk.REAL.free(dir);
            }

            @Override
            public synchronized void reserve(Path file, long bytes) throws IOException {
                if (!file.getFileName().toString().startsWith(name)) return;
                boolean full;
                if (nth == 0) {
                    full = file.getParent().getFileName().toString().equals("step-6");
                } else {
                    full = writes.incrementAndGet() >= nth;
                }
                if (full) throw new IOException("No space left on device");
            }
        };
    }

    @ParameterizedTest(name = "{0} #{1}")
    @CsvSource({
        // file, its write that fails (0: the one in checkpoint 6), the checkpoint that stands after it (0: none)
        "config.conf, 1, 0",
        "history.log, 1, 0",
        "metrics.jsonl, 5, 3",
        "events.out.tfevents, 6, 3",
        "trace.json, 1, 3",
        "report.html, 2, 3",
        "config.json, 0, 3",
        "tokenizer.json, 0, 3",
        "trainer_state.json, 0, 3",
        "model-, 0, 3",
        "optimizer-, 0, 3",
        "model.safetensors.index.json, 0, 3",
        "manifest.json, 0, 3",
    })
    void aFullDiskEndsTheRunCleanlyAndTheSameCommandGoesOn(String file, int nth, int standing) throws Exception {
        Path run = dir.resolve("run");
        FileWrites.use(fullAt(file, nth));
        StringWriter err = new StringWriter();
        assertEquals(1, Cli.run(err, command(dir, run, "adalomo")), err::toString);
        String said = err.toString().strip();
        assertFalse(said.contains("\n"), "one line: " + said);
        assertTrue(said.matches("relay: (\\S+ \\(stage \\d+\\): )?cannot write \\S*" + java.util.regex.Pattern.quote(file) + "\\S*: No space left on device; .*"),
                said);
        if (standing > 0) {
            assertTrue(said.endsWith("the newest checkpoint is " + run.resolve("checkpoints/step-" + standing)
                    + ": go on from it with relay train --resume " + run + " once there is room"), said);
            assertEquals(List.of("step-" + standing), list(run.resolve("checkpoints")), "the partial checkpoint is gone");
            assertNoPartialFile(run);
            if (!file.equals("history.log")) {
                List<String> history = Files.readAllLines(run.resolve("history.log"));
                assertTrue(history.get(history.size() - 1).matches(".*  ended: .*cannot write .*"), history.toString());
            }
        } else {
            assertTrue(said.endsWith("the run has no checkpoint yet: start it again once there is room"), said);
            assertFalse(Files.exists(run), "a run that recorded no step leaves no directory");
        }

        FileWrites.use(FileWrites.Disk.REAL);
        assertEquals(0, Cli.run(err, command(dir, run, "adalomo")), err::toString);
        assertNull(Checkpoint.difference(whole.resolve("checkpoints/step-6"), run.resolve("checkpoints/step-6")));
        assertEquals(losses(whole), losses(run));
        assertNoPartialFile(run);
    }

    /** The plain loop writes its checkpoint in the run's own thread: a full disk there ends it the same way. */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"model.safetensors", "optimizer.safetensors"})
    void thePlainLoopsCheckpointToo(String file) throws Exception {
        Path run = dir.resolve("run");
        FileWrites.use(fullAt(file, 0));
        StringWriter err = new StringWriter();
        assertEquals(1, Cli.run(err, command(dir, run, "sgd")), err::toString);
        assertTrue(err.toString().matches("relay: cannot write \\S*step-6/" + file + ": No space left on device; the newest checkpoint is "
                + "\\S*step-3: .*\\s*"), err.toString());
        assertEquals(List.of("step-3"), list(run.resolve("checkpoints")));
        assertNoPartialFile(run);
    }

    /** Too little room for a checkpoint is told before any of it is written, with both sizes. */
    @ParameterizedTest(name = "free {0} bytes")
    @CsvSource({"1000000"})
    void tooLittleRoomIsToldBeforeTheCheckpointIsWritten(long free) throws Exception {
        Path run = dir.resolve("run");
        BooleanSupplier firstCheckpointDone = () -> Files.isRegularFile(run.resolve("checkpoints/step-3/manifest.json"));
        FileWrites.use(new FileWrites.Disk() {
            @Override
            public long free(Path d) throws IOException {
                return firstCheckpointDone.getAsBoolean() ? free : FileWrites.Disk.REAL.free(d);
            }

            @Override
            public void reserve(Path file, long bytes) {}
        });
        StringWriter err = new StringWriter();
        assertEquals(1, Cli.run(err, command(dir, run, "adalomo")), err::toString);
        assertTrue(err.toString().matches("relay: cannot write checkpoint \\S*step-6: it needs [\\d.]+ MiB and the disk has 1\\.0 MiB free; "
                + "the newest checkpoint is \\S*step-3: .*\\s*"), err.toString());
        assertEquals(List.of("step-3"), list(run.resolve("checkpoints")));
        FileWrites.use(FileWrites.Disk.REAL);
        assertEquals(0, Cli.run(err, command(dir, run, "adalomo")), err::toString);
        assertNull(Checkpoint.difference(whole.resolve("checkpoints/step-6"), run.resolve("checkpoints/step-6")));
    }

    /** A run directory that turns read-only mid-run ends the run as a full disk does, the cause told. */
    @org.junit.jupiter.api.Test
    void aRunDirectoryTurnedReadOnlyEndsTheRunTheSameWay() throws Exception {
        Path run = dir.resolve("run");
        FileWrites.use(new FileWrites.Disk() {
            @Override
            public long free(Path d) throws IOException {
                return FileWrites.Disk.REAL.free(d);
            }

            @Override
            public void reserve(Path file, long bytes) throws IOException {
                if (Files.isRegularFile(run.resolve("checkpoints/step-3/manifest.json"))) {
                    throw new java.nio.file.FileSystemException(file.toString(), null, "Read-only file system");
                }
            }
        });
        StringWriter err = new StringWriter();
        assertEquals(1, Cli.run(err, command(dir, run, "adalomo")), err::toString);
        assertTrue(err.toString().matches("relay: cannot write \\S+: Read-only file system; the newest checkpoint is \\S*step-3: .*\\s*"),
                err.toString());
        assertEquals(List.of("step-3"), list(run.resolve("checkpoints")));
        assertNoPartialFile(run);
    }

    /** A run directory the user cannot write in is refused before the run starts (root writes anywhere: skipped as root). */
    @org.junit.jupiter.api.Test
    void aReadOnlyRunDirectoryIsRefusedBeforeTheRunStarts() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeFalse("root".equals(System.getProperty("user.name")),
                "permissions do not bind root: no read-only directory can be made here");
        Path run = Files.createDirectories(dir.resolve("run"));
        assertTrue(run.toFile().setWritable(false, false));
        try {
            StringWriter err = new StringWriter();
            assertEquals(2, Cli.run(err, command(dir, run, "adalomo")));
            assertTrue(err.toString().matches("relay: cannot (write|create) \\S*run\\S*: .*\\s*"), err.toString());
        } finally {
            run.toFile().setWritable(true, false);
        }
    }

    private static void assertNoPartialFile(Path run) throws IOException {
        try (Stream<Path> all = Files.walk(run)) {
            List<Path> partial = all.filter(p -> p.getFileName().toString().endsWith(".tmp")).toList();
            assertTrue(partial.isEmpty(), "left behind: " + partial);
        }
    }

    private static List<String> list(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    /** Each step's loss as metrics.jsonl has it. */
    private static List<String> losses(Path run) throws IOException {
        return Files.readAllLines(run.resolve("metrics.jsonl")).stream().map(l -> l.replaceAll(".*\"loss\":([^,]+),.*", "$1")).toList();
    }
}
