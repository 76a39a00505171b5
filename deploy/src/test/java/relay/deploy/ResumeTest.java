package relay.deploy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import relay.deploy.train.Checkpoint;

/**
 * relay train --resume: a run cut short after a checkpoint and resumed ends exactly where the run that was
 * never interrupted ends; damaged or foreign checkpoints are refused with the file and the problem.
 */
class ResumeTest {
    @TempDir
    Path dir;


    /**
     * A 6-step run checkpointed at 3 and 6: AdaLomo with LISA redrawing every 2 steps, or LoRA, both in the
     * pipeline.
     */
    private Path train(Path out, String optimizer) throws IOException {
        StringWriter err = new StringWriter();
        assertEquals(0, Cli.run(err, command(optimizer, "--out", out.toString())), err::toString);
        try (Stream<Path> s = Files.list(out)) {
            return s.findFirst().orElseThrow();
        }
    }

    /** The train command of those runs, with where it goes; {@code optimizer} may be followed by settings ("adalomo dtype=bf16"). */
    private String[] command(String optimizer, String where, String directory) throws IOException {
        Path corpus = dir.resolve("corpus.txt");
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 60; i++) sb.append("And the evening and the morning were the ").append(i % 5).append(" day.\n");
        Files.writeString(corpus, sb.toString());
        String[] method = optimizer.split(" ");
        List<String> args = new ArrayList<>(List.of("train", "--model", "llama-tiny", "--optimizer", method[0], "--data", corpus.toString(),
                "--steps", "6", where, directory, "batch=2", "seq=16", "microbatches=2", "devices=2", "eval-every=2",
                "checkpoint-every=3", "trace-steps=0", "eval-sequences=4", "lisa.gamma=1", "lisa.period=2", "validation-fraction=0.1"));
        args.addAll(List.of(method).subList(1, method.length));
        return args.toArray(String[]::new);
    }

    /** --run: the same command starts the run, and after a preemption goes on with it where it stopped. */
    @Test
    void theSameRunCommandStartsARunAndGoesOnWithIt() throws Exception {
        Path job = dir.resolve("job");
        String[] cmd = command("adalomo", "--run", job.toString());
        StringWriter err = new StringWriter();
        assertEquals(0, Cli.run(err, cmd), err::toString);
        Path last = job.resolve("checkpoints/step-6"), whole = dir.resolve("whole-step-6");
        copy(last, whole);
        List<String> losses = losses(job), lines = Files.readAllLines(job.resolve("metrics.jsonl"));
        delete(last);
        assertEquals(0, Cli.run(err, cmd), err::toString);
        assertNull(Checkpoint.difference(whole, last));
        assertEquals(losses, losses(job));
        // Resumed, not started again: steps 1–3 are the first invocation's lines, timings and all.
        assertEquals(lines.subList(0, 3), Files.readAllLines(job.resolve("metrics.jsonl")).subList(0, 3));
        assertEquals(2, Cli.run(err, "train", "--run", job.toString(), "--resume", job.toString()));
    }

    private static void copy(Path from, Path to) throws IOException {
        try (Stream<Path> all = Files.walk(from)) {
            for (Path p : all.toList()) {
                Path q = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p)) Files.createDirectories(q);
                else Files.copy(p, q);
            }
        }
    }

    private static void delete(Path p) throws IOException {
        try (Stream<Path> all = Files.walk(p)) {
            for (Path q : all.sorted(java.util.Comparator.reverseOrder()).toList()) Files.delete(q);
        }
    }

    /** Each step's training and validation loss from metrics.jsonl. */
    private static List<String> losses(Path run) throws IOException {
        List<String> out = new ArrayList<>();
        for (String line : Files.readAllLines(run.resolve("metrics.jsonl"))) {
            JsonObject o = JsonParser.parseString(line).getAsJsonObject();
            out.add(o.get("step") + " " + o.get("loss") + " " + o.get("val_loss"));
        }
        return out;
    }

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"adalomo", "lora", "adalomo dtype=bf16", "adalomo replicas=2 batch=4", "lora replicas=2 batch=4"})
    void aRunCutShortAndResumedEndsExactlyWhereTheWholeRunEnds(String optimizer) throws Exception {
        Path whole = train(dir.resolve("a"), optimizer);
        assertEquals(optimizer.endsWith("bf16") ? relay.stages.tensor.DType.BF16 : relay.stages.tensor.DType.F32,
                relay.stages.io.HfModelDirectory.storedDtype(whole.resolve("checkpoints/step-3")), "the checkpoint is in the run's dtype");
        // The same run, stopped during step 6 after a partial checkpoint at 5: what a killed job leaves.
        Path cut = dir.resolve("b").resolve(whole.getFileName().toString());
        copy(whole, cut);
        delete(cut.resolve("checkpoints/step-6"));
        Files.createDirectories(cut.resolve("checkpoints/step-5"));
        Files.writeString(cut.resolve("checkpoints/step-5/model.safetensors"), "half written");
        Files.writeString(cut.resolve("metrics.jsonl"), "{\"step\":6,\"loss\":3.1", java.nio.file.StandardOpenOption.APPEND);
        StringWriter err = new StringWriter();
        assertEquals(0, Cli.run(err, "train", "--resume", cut.toString()), err::toString);
        assertNull(Checkpoint.difference(whole.resolve("checkpoints/step-6"), cut.resolve("checkpoints/step-6")));
        assertArrayEquals(Files.readAllBytes(whole.resolve("checkpoints/step-6/trainer_state.json")),
                Files.readAllBytes(cut.resolve("checkpoints/step-6/trainer_state.json")));
        assertEquals(losses(whole), losses(cut), "metrics.jsonl: steps 1–3 kept, 4–6 done again identically");
        String history = Files.readString(cut.resolve("history.log"));
        assertTrue(history.matches("(?s).*started: 6 steps.*finished.*resumed at step 3 of 6 from checkpoints/step-3.*finished.*"),
                history);
        assertTrue(Files.readString(cut.resolve("report.html")).contains("resumed at step 3 of 6"), "the report tells the history");

        // A finished run goes on only when given more steps.
        err = new StringWriter();
        assertEquals(2, Cli.run(err, "train", "--resume", cut.toString()));
        assertTrue(err.toString().contains("is at step 6 and the run has 6 steps: raise steps"), err.toString());
        assertEquals(0, Cli.run(err, "train", "--resume", cut.toString(), "steps=7"), err::toString);
        assertEquals(7, losses(cut).size());
        assertTrue(Files.isRegularFile(cut.resolve("checkpoints/step-7/manifest.json")));
    }

    /**
     * A checkpoint of two replicas holds every parameter's optimizer state once, split over the replicas' files: a run
     * resumed from it with one replica goes on where the two would have, to float32 rounding (the gradients summed in
     * another order), and with two again exactly.
     */
    @Test
    void aReplicatedRunResumesWithOneReplica() throws Exception {
        Path whole = train(dir.resolve("a"), "adalomo replicas=2 batch=4");
        assertTrue(Files.isRegularFile(whole.resolve("checkpoints/step-3/optimizer-block-0-r1.safetensors")), "replica 1's state");
        assertFalse(Files.exists(whole.resolve("checkpoints/step-3/model-block-0-r1.safetensors")), "replica 0's weights alone");
        Path cut = dir.resolve("b").resolve(whole.getFileName().toString());
        copy(whole, cut);
        delete(cut.resolve("checkpoints/step-6"));
        StringWriter err = new StringWriter();
        assertEquals(0, Cli.run(err, "train", "--resume", cut.toString(), "replicas=1"), err::toString);
        List<String> two = losses(whole), one = losses(cut);
        assertEquals(two.subList(0, 3), one.subList(0, 3), "steps 1–3 kept");
        for (int i = 3; i < 6; i++) {
            double a = Double.parseDouble(two.get(i).split(" ")[1]), b = Double.parseDouble(one.get(i).split(" ")[1]);
            assertEquals(a, b, 1e-5 * a, "step " + (i + 1) + ": " + two.get(i) + " against " + one.get(i));
        }
    }

    /** A diverging run fails with one line naming the step and the checkpoint to go on from, not a stack trace. */
    @Test
    void aFailedStepSaysWhereTheRunCanGoOnFrom() throws Exception {
        Path corpus = dir.resolve("corpus.txt"), out = dir.resolve("runs");
        Files.writeString(corpus, "In the beginning God created the heaven and the earth.\n".repeat(40));
        StringWriter err = new StringWriter();
        assertEquals(1, Cli.run(err, "train", "--model", "llama-tiny", "--optimizer", "lomo", "--data", corpus.toString(),
                "--steps", "5", "--out", out.toString(), "lr=1e30", "warmup=0", "batch=2", "seq=16", "microbatches=2",
                "checkpoint-every=1", "trace-steps=0", "eval-sequences=2", "validation-fraction=0.1"));
        String said = err.toString();
        assertTrue(said.matches("(?s)relay: step \\d of 5 failed: .*loss is NaN.*; the newest checkpoint is .*step-\\d: go on from it with relay train --resume .*"),
                said);
        assertTrue(!said.contains("\tat "), "no stack trace: " + said);

        // A step that outlives step-timeout fails the same way, naming the stages it still waited for (a model whose step takes
        // far longer than the scheduler's 10 ms tick, so that the 1 ms timeout fires first).
        err = new StringWriter();
        assertEquals(1, Cli.run(err, "train", "--model", "llama-train", "--data", corpus.toString(), "--steps", "2",
                "--out", out.toString(), "step-timeout=1ms", "batch=2", "seq=64", "microbatches=2", "trace-steps=0",
                "eval-sequences=2", "validation-fraction=0.1"), err::toString);
        assertTrue(err.toString().contains("relay: step 1 of 2 failed: step 0 timed out after PT0.001S")
                && err.toString().contains("the run has no checkpoint yet"), err.toString());
        err = new StringWriter();
        assertEquals(2, Cli.run(err, "train", "step-timeout=0s", "--out", out.toString()));
        assertTrue(err.toString().contains("relay.train.step-timeout must be > 0"), err.toString());
    }

    private static void flipLastByte(Path f) throws IOException {
        byte[] b = Files.readAllBytes(f);
        b[b.length - 1] ^= 1;
        Files.write(f, b);
    }

    /**
     * Going back to an older checkpoint (with another learning rate, checkpointing every 2 steps and keeping one) starts
     * a new history: the old run's newer checkpoint is set aside, whole, not taken by the pruning for the newest —
     * which would have kept the old step-6 and deleted each new one, the run's last included.
     */
    @Test
    void goingBackToAnOlderCheckpointSetsTheNewerOnesAside() throws Exception {
        Path run = train(dir.resolve("a"), "adalomo");
        Path old6 = dir.resolve("old-step-6");
        copy(run.resolve("checkpoints/step-6"), old6);
        StringWriter err = new StringWriter();
        assertEquals(0, Cli.run(err, "train", "--resume", run.resolve("checkpoints/step-3").toString(), "steps=5", "lr=0.01",
                "checkpoint-every=2", "keep-checkpoints=1"), err::toString);
        List<String> names;
        try (Stream<Path> s = Files.list(run.resolve("checkpoints"))) {
            names = s.map(p -> p.getFileName().toString()).sorted().toList();
        }
        assertEquals(2, names.size(), names.toString());
        assertEquals("step-5", names.get(0), "the new run's last checkpoint is kept");
        assertTrue(names.get(1).startsWith("step-6.superseded-"), names.toString());
        assertNull(Checkpoint.difference(old6, run.resolve("checkpoints").resolve(names.get(1))), "set aside whole");
        assertTrue(Files.readString(run.resolve("history.log")).contains("set aside as " + names.get(1)));
        assertEquals(5, losses(run).size(), "metrics.jsonl: the new history's five steps");
    }

    /**
     * The stages' shards of a pipeline checkpoint: one corrupt, or one missing, and the checkpoint is refused,
     * named (on the console and in history.log), and the one before used — a run resumed from its directory then ends
     * where the whole run ended.
     */
    @Test
    void aCheckpointWithACorruptOrMissingShardIsRefusedAndTheOneBeforeUsed() throws Exception {
        Path whole = train(dir.resolve("a"), "adalomo");
        assertTrue(Files.isRegularFile(whole.resolve("checkpoints/step-6/model.safetensors.index.json")), "a sharded Hugging Face directory");
        for (String damage : List.of("corrupt", "missing")) {
            Path cut = dir.resolve(damage).resolve(whole.getFileName().toString());
            copy(whole, cut);
            Path shard = cut.resolve("checkpoints/step-6/optimizer-block-0.safetensors");
            if (damage.equals("corrupt")) flipLastByte(shard); else Files.delete(shard);
            java.io.ByteArrayOutputStream said = new java.io.ByteArrayOutputStream();
            java.io.PrintStream stdout = System.out;
            System.setOut(new java.io.PrintStream(said, true, java.nio.charset.StandardCharsets.UTF_8));
            StringWriter err = new StringWriter();
            try {
                assertEquals(0, Cli.run(err, "train", "--resume", cut.toString(), "steps=6"), err::toString);
            } finally {
                System.setOut(stdout);
            }
            String printed = said.toString(java.nio.charset.StandardCharsets.UTF_8);
            assertTrue(printed.contains("step-6 refused (") && printed.contains("optimizer-block-0.safetensors: " + damage)
                    && printed.contains("using step-3, the one before") && printed.contains("resuming " + cut + " at step 3"), printed);
            String history = Files.readString(cut.resolve("history.log"));
            assertTrue(history.contains("step-6 refused (") && history.indexOf("refused (") < history.lastIndexOf("resumed at step 3"), history);
            assertNull(Checkpoint.difference(whole.resolve("checkpoints/step-6"), cut.resolve("checkpoints/step-6")), damage);
            assertEquals(losses(whole), losses(cut), damage);
        }
    }

    @Test
    void damagedOrForeignCheckpointsAreRefusedNamingTheFile() throws Exception {
        Path run = train(dir.resolve("a"), "adalomo");
        Path step3 = run.resolve("checkpoints/step-3");
        StringWriter err = new StringWriter();
        assertEquals(2, Cli.run(err, "train", "--resume", step3.toString(), "--optimizer", "adamw"));
        assertTrue(err.toString().contains("a resumed run cannot change relay.train.optimizer (adalomo → adamw)"), err.toString());

        flipLastByte(step3.resolve("model-block-1.safetensors"));
        err = new StringWriter();
        assertEquals(2, Cli.run(err, "train", "--resume", step3.toString()));
        assertTrue(err.toString().contains("step-3/model-block-1.safetensors: corrupt"), err.toString());

        Files.delete(step3.resolve("manifest.json"));
        err = new StringWriter();
        assertEquals(2, Cli.run(err, "train", "--resume", step3.toString()));
        assertTrue(err.toString().contains("manifest.json: missing: the checkpoint was not completely written"), err.toString());

        Path loose = dir.resolve("elsewhere/x/step-3");
        copy(step3, loose);
        err = new StringWriter();
        assertEquals(2, Cli.run(err, "train", "--resume", loose.toString()));
        assertTrue(err.toString().contains("is not in a run directory") && err.toString().contains("--model " + loose), err.toString());

        err = new StringWriter();
        assertEquals(2, Cli.run(err, "train", "--resume", dir.resolve("nowhere").toString()));
        assertTrue(err.toString().contains("nowhere: no such run or checkpoint directory"), err.toString());
    }
}
