package relay.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * deploy/bin/relay-ssh against an ssh stand-in: each "host" is a directory of this machine where the command
 * runs, as sshd would run it (fresh signal dispositions), every node on loopback. The launcher copies relay
 * and the coordinator's inputs, runs one JVM per host, gathers their output, and stops them all when one fails.
 */
@Timeout(value = 6, unit = TimeUnit.MINUTES)
class SshLauncherTest {
    @TempDir
    Path dir;

    private Process launcher;
    private final List<ProcessHandle> started = new ArrayList<>();

    @BeforeEach
    void stageFiles() throws IOException {
        RelayHome.assemble(Files.createDirectories(dir.resolve("home")));
        Path ssh = dir.resolve("fake-ssh");
        Files.writeString(ssh, """
                #!/usr/bin/env bash
                dest="$1"; shift
                mkdir -p "$FAKE_SSH_ROOT/$dest" && cd "$FAKE_SSH_ROOT/$dest" && exec env --default-signal=INT,TERM bash -c "$*"
                """);
        assertTrue(ssh.toFile().setExecutable(true));
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 80; i++) sb.append("In the beginning was the word, and the word was ").append(i % 7).append(".\n");
        Files.writeString(dir.resolve("corpus.txt"), sb.toString());
    }

    @AfterEach
    void stopAll() throws InterruptedException {
        if (launcher != null) launcher.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
        for (ProcessHandle p : started) p.destroyForcibly();
    }

    private Process launch(Path log, String... train) throws IOException {
        List<String> cmd = new ArrayList<>(List.of("bash", Path.of("bin/relay-ssh").toAbsolutePath().toString(),
                "a=127.0.0.1,b=127.0.0.1,c=127.0.0.1", "--", "train"));
        cmd.addAll(List.of(train));
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).redirectOutput(log.toFile());
        Map<String, String> env = pb.environment();
        env.put("RELAY_SSH", dir.resolve("fake-ssh").toString());
        env.put("FAKE_SSH_ROOT", dir.resolve("hosts").toString());
        env.put("RELAY_PORT", String.valueOf(ClusterTrainingTest.freePort()));
        env.put("RELAY_HOME", dir.resolve("home").toString());
        env.put("RELAY_JAVA_OPTS", "-Xmx512m");
        launcher = pb.start();
        return launcher;
    }

    @Test
    void trainsOnEveryHostAndGathersTheirOutput() throws Exception {
        Path log = dir.resolve("launcher.log");
        Files.writeString(dir.resolve("train.conf"), "relay.train.eval-every = 3\n");
        Process p = launch(log, "--data", "corpus.txt", "--config", "train.conf", "--model", "llama-tiny", "--steps", "6", "seq=16");
        assertTrue(p.waitFor(4, TimeUnit.MINUTES), () -> "relay-ssh did not finish: " + read(log));
        String out = read(log);
        assertEquals(0, p.exitValue(), out);
        assertTrue(out.contains("[node 0] done in"), out);
        assertTrue(out.contains("[node 1] node 1: the run ended") && out.contains("[node 2] node 2: the run ended"), out);
        // The corpus and the settings went to the coordinator alone, each input in a directory of its own, and the run
        // directory is there.
        assertTrue(Files.exists(dir.resolve("hosts/a/relay-ssh/inputs/1/corpus.txt")));
        assertTrue(Files.exists(dir.resolve("hosts/a/relay-ssh/inputs/2/train.conf")));
        assertFalse(Files.exists(dir.resolve("hosts/b/relay-ssh/inputs")));
        Path run;
        try (Stream<Path> runs = Files.list(dir.resolve("hosts/a/relay-ssh/runs"))) {
            run = runs.findFirst().orElseThrow();
        }
        assertEquals(6, Files.readAllLines(run.resolve("metrics.jsonl")).size());
        assertTrue(Files.isDirectory(run.resolve("checkpoints/step-6")));
    }

    @Test
    void aNodeThatFailsStopsEveryNode() throws Exception {
        Path log = dir.resolve("launcher.log");
        Process p = launch(log, "--data", "corpus.txt", "--model", "llama-tiny", "--steps", "100000", "seq=16");
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(3);
        while (!read(log).contains("training on the actor pipeline") && System.nanoTime() < deadline) Thread.sleep(200);
        assertTrue(read(log).contains("training on the actor pipeline"), () -> "the run did not start: " + read(log));
        List<ProcessHandle> jvms = p.descendants().filter(h -> h.info().commandLine().orElse("").contains("relay.jar")).toList();
        started.addAll(jvms);
        assertEquals(3, jvms.size(), () -> "one relay JVM per host: " + jvms.stream().map(h -> h.info().commandLine().orElse("")).toList());
        ProcessHandle worker = jvms.stream().filter(h -> h.info().commandLine().orElse("").contains("--index 1")).findFirst().orElseThrow();
        worker.destroyForcibly();
        assertTrue(p.waitFor(3, TimeUnit.MINUTES), () -> "relay-ssh did not stop: " + read(log));
        String out = read(log);
        assertNotEquals(0, p.exitValue(), out);
        assertTrue(out.contains("relay-ssh: node 1 (b) failed"), out);
        for (ProcessHandle h : jvms) {
            h.onExit().get(60, TimeUnit.SECONDS);
            assertFalse(h.isAlive(), "a node outlived the launcher");
        }
    }

    private static String read(Path log) {
        try {
            return Files.exists(log) ? Files.readString(log) : "";
        } catch (IOException e) {
            return e.toString();
        }
    }
}
