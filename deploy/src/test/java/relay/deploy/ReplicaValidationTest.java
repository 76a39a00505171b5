package relay.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Evaluation with replicas when fewer sequences are evaluated than a microbatch holds: the validation set is taken a
 * sequence to each replica, and gives the loss one replica gives on the same sequences.
 */
class ReplicaValidationTest {
    @TempDir
    Path dir;

    private double validationLoss(String name, String replicas) throws IOException {
        Path corpus = dir.resolve("corpus.txt");
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 80; i++) sb.append("And the evening and the morning were the ").append(i % 7).append(" day.\n");
        Files.writeString(corpus, sb.toString());
        Path out = dir.resolve(name);
        StringWriter err = new StringWriter();
        // A microbatch of 8 sequences, 4 of them evaluated.
        assertEquals(0, Cli.run(err, "train", "--model", "llama-tiny", "--data", corpus.toString(), "--steps", "2", "--out", out.toString(),
                "batch=8", "microbatches=1", "seq=16", "eval-every=2", "eval-sequences=4", "validation-fraction=0.2", "trace-steps=0",
                replicas), err::toString);
        Path run;
        try (Stream<Path> s = Files.list(out)) {
            run = s.findFirst().orElseThrow();
        }
        List<String> lines = Files.readAllLines(run.resolve("metrics.jsonl"));
        JsonObject last = JsonParser.parseString(lines.get(lines.size() - 1)).getAsJsonObject();
        assertTrue(last.has("val_loss") && !last.get("val_loss").isJsonNull(), lines.get(lines.size() - 1));
        return last.get("val_loss").getAsDouble();
    }

    @Test
    void twoReplicasEvaluateFewerSequencesThanAMicrobatchAsOneReplicaDoes() throws IOException {
        double one = validationLoss("one", "replicas=1"), two = validationLoss("two", "replicas=2");
        assertEquals(one, two, 1e-4 * one, "two replicas' validation loss against one's, within float32 rounding");
    }
}
