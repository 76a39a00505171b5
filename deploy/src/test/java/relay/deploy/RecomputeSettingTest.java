package relay.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** relay train recompute=true: the same losses as keeping activations, on the pipeline and on the plain loop, with fewer activations held. */
class RecomputeSettingTest {
    @TempDir
    Path dir;

    /** Each step's loss, and the largest activations peak of the run. */
    private record Run(List<String> losses, long activations) {}

    private Run train(String optimizer, boolean recompute) throws IOException {
        Path corpus = dir.resolve("corpus.txt");
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 60; i++) sb.append("In the beginning was the ").append(i % 7).append(" word.\n");
        Files.writeString(corpus, sb.toString());
        Path out = dir.resolve(optimizer + "-" + recompute);
        StringWriter err = new StringWriter();
        assertEquals(0, Cli.run(err, "train", "--model", "llama-tiny", "--optimizer", optimizer, "--data", corpus.toString(), "--steps", "3",
                "--out", out.toString(), "batch=4", "seq=16", "microbatches=2", "devices=2", "trace-steps=0", "eval-every=3",
                "validation-fraction=0.1", "eval-sequences=2", "recompute=" + recompute), err::toString);
        Path run;
        try (Stream<Path> s = Files.list(out)) {
            run = s.findFirst().orElseThrow();
        }
        List<String> losses = new ArrayList<>();
        long activations = 0;
        for (String line : Files.readAllLines(run.resolve("metrics.jsonl"))) {
            JsonObject o = JsonParser.parseString(line).getAsJsonObject();
            losses.add(o.get("step") + " " + o.get("loss"));
            activations = Math.max(activations, o.getAsJsonObject("peak_bytes").get("activations").getAsLong());
        }
        return new Run(losses, activations);
    }

    @ParameterizedTest
    @ValueSource(strings = {"adalomo", "sgd"})
    void recomputingGivesTheSameLossesWithFewerActivations(String optimizer) throws IOException {
        Run kept = train(optimizer, false), recomputed = train(optimizer, true);
        assertEquals(kept.losses(), recomputed.losses());
        assertTrue(recomputed.activations() < kept.activations(), recomputed.activations() + " vs " + kept.activations());
    }
}
