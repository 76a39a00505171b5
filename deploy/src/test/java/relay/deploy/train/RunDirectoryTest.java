package relay.deploy.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** New runs claim their directory by creating it: started at once, even within one second, no two share a name. */
class RunDirectoryTest {
    @TempDir
    Path dir;

    @Test
    void runsStartedTogetherGetDirectoriesOfTheirOwn() throws Exception {
        TrainConfig c = TrainConfig.from(ConfigFactory.parseString("relay.train.out = \"" + dir.resolve("runs") + "\"")
                .withFallback(ConfigFactory.load()).resolve());
        int runs = 8;
        ExecutorService pool = Executors.newFixedThreadPool(runs);
        List<RunDirectory> held = new ArrayList<>();
        try {
            List<Future<RunDirectory>> started = new ArrayList<>();
            for (int i = 0; i < runs; i++) started.add(pool.submit((Callable<RunDirectory>) () -> RunDirectory.fresh(c)));
            for (Future<RunDirectory> f : started) held.add(f.get());
        } finally {
            pool.shutdown();
        }
        HashSet<Path> paths = new HashSet<>();
        for (RunDirectory d : held) {
            paths.add(d.path());
            assertTrue(Files.isRegularFile(d.resolve(RunDirectory.LOCK)), "each holds its own lock");
        }
        assertEquals(runs, paths.size(), "distinct directories: " + paths);
        for (RunDirectory d : held) d.close();
    }
}
