package relay.deploy.train;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Settings of small runs for tests: a corpus of a few lines, two steps of two sequences of 16 tokens. */
final class SmallRuns {
    private SmallRuns() {}

    static Path corpus(Path dir) throws IOException {
        return Files.writeString(dir.resolve("corpus.txt"), "In the beginning was the word, and the word was with God.\n".repeat(60));
    }

    /** The resolved settings of a run of {@code model} on {@code corpus}, with {@code given} (HOCON key = value) over them. */
    static Config settings(Path corpus, String model, String... given) {
        return ConfigFactory.parseString("model = \"" + model + "\", data = \"" + corpus + "\", steps = 2, batch = 2, seq = 16, "
                + "microbatches = 2, validation-fraction = 0.1, eval-sequences = 4, trace-steps = 0, " + String.join(", ", given))
                .atPath("relay.train").withFallback(ConfigFactory.load()).resolve();
    }
}
