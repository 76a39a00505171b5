package relay.deploy;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** relay in a JVM of its own, as a user starts it: in a working directory of its choosing, its output gathered in a log. */
public final class RelayProcess {
    private RelayProcess() {}

    /** What a finished command said and returned. */
    record Result(int code, String output) {}

    public static Process start(Path workingDirectory, Path log, String... args) throws IOException {
        return start(workingDirectory, log, List.of(), args);
    }

    /** The same with these options for its JVM (system properties, say). */
    public static Process start(Path workingDirectory, Path log, List<String> jvmOptions, String... args) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"), "-Xss4m"));
        cmd.addAll(jvmOptions);
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Relay.class.getName()));
        cmd.addAll(List.of(args));
        return new ProcessBuilder(cmd).directory(workingDirectory.toFile()).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    }

    /**
     * Waits until the process's log says {@code text} (a worker up and joining, say), so that what a test times
     * next does not include a JVM's start on a loaded machine. Fails if the process ends first or {@code seconds} pass.
     */
    static void awaitOutput(Process p, Path log, String text, long seconds) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (!Files.readString(log, StandardCharsets.UTF_8).contains(text)) {
            if (!p.isAlive() || System.nanoTime() > deadline) {
                throw new AssertionError("'" + text + "' not said by " + log + (p.isAlive() ? " in " + seconds + " s" : ", which ended")
                        + ": " + Files.readString(log, StandardCharsets.UTF_8));
            }
            Thread.sleep(50);
        }
    }

    /** Runs the command to its end (at most three minutes). */
    static Result run(Path workingDirectory, String... args) throws IOException, InterruptedException {
        Path log = Files.createTempFile("relay", ".log");
        try {
            Process p = start(workingDirectory, log, args);
            if (!p.waitFor(3, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                throw new AssertionError("relay " + String.join(" ", args) + " did not finish: " + Files.readString(log));
            }
            return new Result(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
        } finally {
            Files.deleteIfExists(log);
        }
    }
}
