package relay.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** relay train, generate and eval end to end on a tiny model and corpus, in process. */
class TrainCommandTest {
    @TempDir
    Path dir;


    private Path corpus() throws Exception {
        Path c = dir.resolve("corpus.txt");
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 60; i++) sb.append("In the beginning was the word, and the word was ").append(i % 7).append(".\n");
        Files.writeString(c, sb.toString());
        return c;
    }

    @Test
    void aRunLeavesItsDirectoryAndItsCheckpointGeneratesAndEvaluates() throws Exception {
        Path data = corpus(), out = dir.resolve("runs");
        assertEquals(0, Cli.run(new StringWriter(), "train", "--model", "llama-tiny", "--data", data.toString(), "--steps", "4",
                "--out", out.toString(), "batch=2", "seq=16", "microbatches=2", "devices=2", "eval-every=2",
                "checkpoint-every=2", "keep-checkpoints=1", "trace-steps=2", "eval-sequences=4", "lisa.gamma=2", "lisa.period=2", "validation-fraction=0.1"));
        Path run;
        try (Stream<Path> s = Files.list(out)) {
            run = s.findFirst().orElseThrow();
        }
        for (String f : List.of("config.conf", "metrics.jsonl", "trace.json", "report.html", "checkpoints/step-4/model.safetensors.index.json",
                "checkpoints/step-4/model-embedding.safetensors", "checkpoints/step-4/optimizer-block-0.safetensors",
                "checkpoints/step-4/config.json", "checkpoints/step-4/tokenizer.json", "checkpoints/step-4/trainer_state.json",
                "checkpoints/step-4/manifest.json")) {
            assertTrue(Files.isRegularFile(run.resolve(f)), f);
        }
        assertTrue(!Files.exists(run.resolve("checkpoints/step-2")), "keep-checkpoints=1 keeps the newest only");
        List<String> lines = Files.readAllLines(run.resolve("metrics.jsonl"));
        assertEquals(4, lines.size());
        JsonObject last = JsonParser.parseString(lines.get(3)).getAsJsonObject();
        assertTrue(last.has("val_loss") && last.getAsJsonObject("peak_bytes").get("parameters").getAsLong() > 0);
        String html = Files.readString(run.resolve("report.html"));
        assertTrue(html.contains("<svg") && html.contains("Loss"), "charts are inline");
        assertTrue(!html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http"), "no network");
        assertTrue(JsonParser.parseString(Files.readString(run.resolve("checkpoints/step-4/manifest.json"))).getAsJsonObject()
                .getAsJsonObject("sha256").has("optimizer-block-0.safetensors"), "every stage's shard is in the manifest");
        try (var st = relay.stages.io.SafeTensors.open(run.resolve("checkpoints/step-4/optimizer-head.safetensors"))) {
            assertTrue(st.entries().keySet().stream().anyMatch(k -> k.endsWith("/rows")), "AdaLomo's factored moments are saved");
        }

        PrintStream stdout = System.out;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
        try {
            StringWriter err = new StringWriter();
            // A run directory stands for its newest checkpoint.
            assertEquals(0, Cli.run(err, "generate", "--model", run.toString(),
                    "--prompt", "In the", "--max-tokens", "5"), err::toString);
            err = new StringWriter();
            assertEquals(0, Cli.run(err, "eval", "--model", run.resolve("checkpoints/step-4").toString(),
                    "--data", data.toString(), "--seq", "16"), err::toString);
        } finally {
            System.setOut(stdout);
        }
        String printed = captured.toString(StandardCharsets.UTF_8);
        assertTrue(printed.startsWith("In the"), printed);
        assertTrue(printed.contains("perplexity"), printed);
    }

    /** The settings file a run writes (bare relay.train keys) is one --config takes: the same run again, elsewhere. */
    @Test
    void aRunsOwnConfigIsAConfigFile() throws Exception {
        Path data = corpus(), first = dir.resolve("first"), second = dir.resolve("second");
        assertEquals(0, Cli.run(new StringWriter(), "train", "--model", "llama-tiny", "--data", data.toString(), "--steps", "1",
                "--out", first.toString(), "batch=2", "seq=16", "microbatches=2", "trace-steps=0", "eval-sequences=2", "lr=0.003"));
        Path conf;
        try (Stream<Path> s = Files.list(first)) {
            conf = s.findFirst().orElseThrow().resolve("config.conf");
        }
        StringWriter err = new StringWriter();
        assertEquals(0, Cli.run(err, "train", "--config", conf.toString(), "--out", second.toString()), err::toString);
        Path again;
        try (Stream<Path> s = Files.list(second)) {
            again = s.findFirst().orElseThrow().resolve("config.conf");
        }
        com.typesafe.config.Config a = com.typesafe.config.ConfigFactory.parseFile(conf.toFile()),
                b = com.typesafe.config.ConfigFactory.parseFile(again.toFile());
        assertEquals(a.withoutPath("out"), b.withoutPath("out"), "every setting but where runs go, as the first run had it");
        assertEquals(0.003, b.getDouble("lr"), 1e-12);
    }

    /** A requeued job of a run that has finished (relay train --run again) says so and succeeds; raising steps trains on. */
    @Test
    void aFinishedRunRunAgainIsDone() throws Exception {
        Path data = corpus(), job = dir.resolve("job");
        String[] command = {"train", "--run", job.toString(), "--model", "llama-tiny", "--data", data.toString(), "--steps", "2",
                "batch=2", "seq=16", "microbatches=2", "trace-steps=0", "eval-sequences=2", "checkpoint-every=2"};
        assertEquals(0, Cli.run(new StringWriter(), command));
        String again = Cli.output(0, command);
        assertTrue(again.contains(job + " has finished its 2 steps; nothing to do"), again);
        assertEquals(2, Files.readAllLines(job.resolve("metrics.jsonl")).size(), "nothing was trained again");
        java.util.List<String> more = new java.util.ArrayList<>(java.util.List.of(command));
        more.set(more.indexOf("--steps") + 1, "3");
        Cli.output(0, more.toArray(String[]::new));
        assertEquals(3, Files.readAllLines(job.resolve("metrics.jsonl")).size());
    }

    @Test
    void tokenizerTrainWritesAHuggingFaceTokenizer() throws Exception {
        Path out = dir.resolve("tok");
        assertEquals(0, Cli.run(new StringWriter(), "tokenizer", "train", "--corpus", corpus().toString(), "--vocab", "300",
                "--out", out.toString()));
        relay.stages.text.Tokenizer t = relay.stages.text.Tokenizer.read(out.resolve("tokenizer.json"));
        assertTrue(t.size() <= 300);
        assertEquals("<|endoftext|>", t.special().eosToken(), "tokenizer_config.json names the end of a document");
        assertEquals("In the beginning", t.decode(t.encode("In the beginning"), false));
    }

    @Test
    void badSettingsAndInputsAreOneClearLine() throws Exception {
        StringWriter err = new StringWriter();
        assertEquals(2, Cli.run(err, "train", "--model", "llama-tiny", "--data", dir.resolve("none.txt").toString(), "--out", dir.toString()));
        assertTrue(err.toString().contains("none.txt: no such corpus file"), err.toString());
        err = new StringWriter();
        assertEquals(2, Cli.run(err, "train", "microbatches=3", "--out", dir.toString()));
        assertTrue(err.toString().contains("relay.train.microbatches must divide batch"), err.toString());
        err = new StringWriter();
        assertEquals(2, Cli.run(err, "train", "steps=lots", "--out", dir.toString()));
        assertTrue(err.toString().contains("configuration:") && err.toString().contains("steps"), err.toString());
        err = new StringWriter();
        assertEquals(2, Cli.run(err, "train", "learning-rate=0.1", "--out", dir.toString()));
        assertTrue(err.toString().contains("'learning-rate=0.1': unknown setting relay.train.learning-rate; known: relay.train.")
                && err.toString().contains("relay.train.lr,"), err.toString());
        // A misspelling with its full path is refused too, the nearest setting suggested; so is one in a --config file.
        err = new StringWriter();
        assertEquals(2, Cli.run(err, "train", "relay.trian.lr=0.1", "--out", dir.toString()));
        assertTrue(err.toString().contains("unknown setting relay.trian.lr (did you mean relay.train.lr?)"), err.toString());
        err = new StringWriter();
        assertEquals(2, Cli.run(err, "train", "relay.cluster.prot=1234", "--out", dir.toString()));
        assertTrue(err.toString().contains("unknown setting relay.cluster.prot (did you mean relay.cluster.port?)"), err.toString());
        Path conf = Files.writeString(dir.resolve("typo.conf"), "relay.train { lisa.gamam = 2 }\n");
        err = new StringWriter();
        assertEquals(2, Cli.run(err, "train", "--config", conf.toString(), "--out", dir.toString()));
        assertTrue(err.toString().contains(conf + ": unknown setting relay.train.lisa.gamam (did you mean relay.train.lisa.gamma?)"),
                err.toString());
        // An option and a key=value that set the same thing must agree.
        err = new StringWriter();
        assertEquals(2, Cli.run(err, "train", "--steps", "4", "steps=6", "--out", dir.toString()));
        assertTrue(err.toString().contains("--steps 4 and steps=6 disagree: give one"), err.toString());
        err = new StringWriter();
        assertEquals(2, Cli.run(err, "train", "--optimizer", "adamx", "--out", dir.toString()));
        assertTrue(err.toString().contains("unknown optimizer 'adamx'"), err.toString());
        err = new StringWriter();
        assertEquals(2, Cli.run(err, "generate", "--model", dir.toString(), "--prompt", "x"));
        assertTrue(err.toString().contains("neither a model directory (no config.json) nor a run directory"), err.toString());
    }
}
