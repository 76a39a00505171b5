package relay.deploy;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** relay cluster local's JVMs live and die with it: a stop's last words reach its console, and killing it stops them. */
class ClusterLocalTest {
    @TempDir
    Path dir;

    private Process launch(Path log) throws Exception {
        Path corpus = Files.writeString(dir.resolve("corpus.txt"), "And the evening and the morning were the first day.\n".repeat(60));
        return RelayProcess.start(dir, log, "cluster", "local", "--nodes", "2", "--model", "llama-tiny", "--data", corpus.toString(),
                "--steps", "100000", "--out", dir.resolve("runs").toString(), "batch=2", "seq=16", "microbatches=2", "checkpoint-every=100000",
                "eval-every=100000", "trace-steps=0", "validation-fraction=0.1");
    }

    /** The run directory once it has a few steps in it. */
    private Path running(Process p) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (System.nanoTime() < deadline && p.isAlive()) {
            if (Files.isDirectory(dir.resolve("runs"))) {
                try (Stream<Path> runs = Files.list(dir.resolve("runs"))) {
                    for (Path r : runs.toList()) {
                        Path m = r.resolve("metrics.jsonl");
                        if (Files.isRegularFile(m) && Files.readAllLines(m).size() >= 2) return r;
                    }
                }
            }
            Thread.sleep(100);
        }
        throw new AssertionError("the cluster run did not get going (alive: " + p.isAlive() + ")");
    }

    @Test
    @Timeout(value = 4, unit = TimeUnit.MINUTES)
    void aStopsLastWordsReachTheLaunchersConsole() throws Exception {
        Path log = dir.resolve("log.txt");
        Process p = launch(log);
        try {
            Path run = running(p);
            p.destroy();
            assertTrue(p.waitFor(180, TimeUnit.SECONDS), "the launcher ends after its nodes");
            String printed = Files.readString(log, StandardCharsets.UTF_8);
            assertTrue(printed.contains("[node 0] stopped by a signal after step") && printed.contains("go on with: relay train --resume " + run),
                    printed);
        } finally {
            p.destroyForcibly();
        }
    }

    @Test
    @Timeout(value = 4, unit = TimeUnit.MINUTES)
    void killingTheLauncherStopsItsNodes() throws Exception {
        Process p = launch(dir.resolve("log.txt"));
        List<ProcessHandle> nodes = List.of();
        try {
            Path run = running(p);
            nodes = p.toHandle().children().toList();
            assertTrue(nodes.size() == 2, "a coordinator and a worker: " + nodes);
            p.destroyForcibly();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
            while (System.nanoTime() < deadline && nodes.stream().anyMatch(ProcessHandle::isAlive)) Thread.sleep(200);
            assertTrue(nodes.stream().noneMatch(ProcessHandle::isAlive), "every node ended with its launcher");
            assertTrue(Files.readString(run.resolve("history.log")).contains("stopped by a signal after step"),
                    "the coordinator stopped as on a signal, with its checkpoint");
        } finally {
            p.destroyForcibly();
            nodes.forEach(ProcessHandle::destroyForcibly);
        }
    }
}
