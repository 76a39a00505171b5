package relay.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * deploy/slurm/relay.sbatch under stand-ins for srun (each task a process here, on loopback) and scontrol
 * (the node list; requeue recorded): a job trains on three nodes; a job stopped by SIGTERM (preemption) writes
 * a checkpoint and asks to be requeued, and the requeued job, the same command, goes on to the end.
 */
@Timeout(value = 8, unit = TimeUnit.MINUTES)
class SlurmJobTest {
    @TempDir
    Path dir;

    private Process job;

    @BeforeEach
    void stageFiles() throws IOException {
        Path root = dir.resolve("relay");
        Files.createDirectories(root.resolve("deploy/bin"));
        Files.createDirectories(root.resolve("deploy/slurm"));
        for (String f : List.of("bin/relay", "slurm/relay.sbatch", "slurm/relay-task")) {
            Files.copy(Path.of(f), root.resolve("deploy/" + f), StandardCopyOption.COPY_ATTRIBUTES);
        }
        RelayHome.assemble(Files.createDirectories(root.resolve("deploy/target")));
        Path bin = Files.createDirectories(dir.resolve("fake-bin"));
        script(bin.resolve("srun"), """
                #!/usr/bin/env bash
                # Runs the command once per node of the job, here, each with its task's variables.
                while [[ "$1" == --* ]]; do shift; done
                pids=()
                for ((i = 0; i < SLURM_NNODES; i++)); do SLURM_PROCID=$i SLURMD_NODENAME=127.0.0.1 "$@" & pids+=($!); done
                trap 'kill -TERM "${pids[@]}" 2>/dev/null' TERM
                code=0
                for p in "${pids[@]}"; do
                  while kill -0 "$p" 2>/dev/null; do wait "$p" && c=0 || c=$?; done
                  wait "$p" 2>/dev/null && c=0 || c=$?
                  [[ $p == "${pids[0]}" ]] && code=$c
                done
                exit "$code"
                """);
        script(bin.resolve("scontrol"), """
                #!/usr/bin/env bash
                case "$1 $2" in
                  "show hostnames") for ((i = 0; i < SLURM_NNODES; i++)); do echo 127.0.0.1; done;;
                  "requeue "*) echo "$2" >> "$FAKE_REQUEUED";;
                esac
                """);
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 80; i++) sb.append("In the beginning was the word, and the word was ").append(i % 7).append(".\n");
        Files.writeString(dir.resolve("corpus.txt"), sb.toString());
    }

    private static void script(Path p, String text) throws IOException {
        Files.writeString(p, text);
        assertTrue(p.toFile().setExecutable(true));
    }

    @AfterEach
    void stop() throws InterruptedException {
        if (job != null && job.isAlive()) {
            job.descendants().forEach(ProcessHandle::destroyForcibly);
            job.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
        }
    }

    private Process submit(Path log, int port, String steps) throws IOException {
        ProcessBuilder pb = new ProcessBuilder("bash", dir.resolve("relay/deploy/slurm/relay.sbatch").toString(), "--run", "runs/job",
                "--data", "corpus.txt", "--model", "llama-tiny", "--steps", steps, "seq=16")
                .directory(dir.toFile()).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
        Map<String, String> env = pb.environment();
        env.put("PATH", dir.resolve("fake-bin") + ":" + env.get("PATH"));
        env.put("SLURM_JOB_ID", "4242");
        env.put("SLURM_NNODES", "3");
        env.put("SLURM_JOB_NODELIST", "node[1-3]");
        env.put("SLURM_SUBMIT_DIR", dir.toString());
        env.put("RELAY_ROOT", dir.resolve("relay").toString());
        env.put("RELAY_PORT", String.valueOf(port));
        env.put("RELAY_JAVA_OPTS", "-Xmx512m");
        env.put("FAKE_REQUEUED", dir.resolve("requeued").toString());
        job = pb.start();
        return job;
    }

    @Test
    void aPreemptedJobCheckpointsAsksForRequeueAndTheRequeuedJobGoesOn() throws Exception {
        Path log = dir.resolve("job.log");
        Process first = submit(log, ClusterTrainingTest.freePort(), "100000");
        Path run = dir.resolve("runs/job");
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(3);
        while (!Files.exists(run.resolve("metrics.jsonl")) && System.nanoTime() < deadline) Thread.sleep(200);
        assertTrue(Files.exists(run.resolve("metrics.jsonl")), () -> "the job did not start training: " + read(log));
        Thread.sleep(2000);
        first.toHandle().destroy();  // SIGTERM, as SLURM preempts
        assertTrue(first.waitFor(3, TimeUnit.MINUTES), () -> "the job did not stop: " + read(log));
        assertEquals(143, first.exitValue(), read(log));
        assertTrue(read(log).contains("stopped by a signal after step"), read(log));
        assertEquals("4242", Files.readString(dir.resolve("requeued")).trim(), read(log));
        int stoppedAt = Files.readAllLines(run.resolve("metrics.jsonl")).size();
        assertTrue(stoppedAt >= 1);

        // The requeued job: the same command, here with fewer steps left so it ends.
        int total = stoppedAt + 4;
        Process again = submit(log, ClusterTrainingTest.freePort(), String.valueOf(total));
        assertTrue(again.waitFor(4, TimeUnit.MINUTES), () -> "the requeued job did not finish: " + read(log));
        assertEquals(0, again.exitValue(), read(log));
        assertEquals(total, Files.readAllLines(run.resolve("metrics.jsonl")).size(), read(log));
        String history = Files.readString(run.resolve("history.log"));
        assertTrue(history.contains("stopped by a signal") && history.contains("resumed") && history.contains("finished"), history);
        assertTrue(Files.isDirectory(run.resolve("checkpoints/step-" + total)));
    }

    private static String read(Path log) {
        try {
            return Files.exists(log) ? Files.readString(log) : "";
        } catch (IOException e) {
            return e.toString();
        }
    }
}
