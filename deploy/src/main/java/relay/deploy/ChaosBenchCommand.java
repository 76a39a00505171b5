package relay.deploy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import relay.deploy.train.RunComparison;

@Command(name = "chaos", mixinStandardHelpOptions = true,
        description = "Runs of three JVMs on loopback (a coordinator, two workers), each losing a randomly chosen worker "
                + "(SIGKILL) at a random step: how many runs survived, how many ended bit-identical (weights, optimizer "
                + "state, every loss) to the run that lost nothing and how many within float32 rounding of it (a run of "
                + "replicas goes on with fewer), and what each loss cost: the steps done again and the "
                + "pause from the kill to the next step done. llama-tiny, the run's default checkpoint and snapshot intervals.")
final class ChaosBenchCommand implements Callable<Integer> {
    @Option(names = "--kills", description = "runs, each losing one worker (default ${DEFAULT-VALUE})")
    int kills = 20;

    @Option(names = "--steps", description = "steps of each run (default ${DEFAULT-VALUE})")
    int steps = 8;

    @Option(names = "--seed", description = "draws the victims and steps: a number, or random for one drawn from the clock "
            + "(printed) (default ${DEFAULT-VALUE})")
    String seed = "29412658892505";

    @Option(names = "--replicas", description = "replicas of the pipeline, each taking one sequence of every microbatch "
            + "(default ${DEFAULT-VALUE})")
    int replicas = 1;

    @Option(names = "--mode", description = "the pipeline's update mode, exact or eager (default ${DEFAULT-VALUE})")
    String mode = "exact";

    @Mixin
    JsonOption json;

    private long seed() {
        try {
            return Long.parseLong(seed);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--seed must be a whole number or random, not " + seed);
        }
    }

    /** A run that does not end by then is counted as not surviving. */
    private static final long RUN_LIMIT_SECONDS = 300;

    @Override
    public Integer call() throws Exception {
        Inputs.require(kills >= 1, "--kills", "≥ 1", kills);
        Inputs.require(steps >= 4, "--steps", "≥ 4 (a worker is killed after step 2 to steps − 1)", steps);
        Inputs.parsed("--mode", () -> relay.actors.UpdateMode.parse(mode));
        Inputs.require(replicas >= 1, "--replicas", "≥ 1", replicas);
        long s = seed.equals("random") ? System.nanoTime() : seed();
        SplittableRandom random = new SplittableRandom(s);
        Path work = Files.createTempDirectory("relay-chaos");
        Path corpus = work.resolve("corpus.txt");
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 80; i++) text.append("In the beginning was the word, and the word was ").append(i % 7).append(".\n");
        relay.stages.io.FileWrites.writeString(corpus, text);
        System.out.printf("%d runs of %d steps in %s mode%s, seed %d, in %s%n", kills, steps, mode,
                replicas == 1 ? "" : ", " + replicas + " replicas", s, work);

        Path reference = runDir(work.resolve("reference"), run(work, "reference", corpus, 1, 0, -1, -1).code());
        Table table = new Table("run", "node killed", "after step", "survived", "identical", "within tolerance", "steps lost", "pause s", "seconds");
        List<Map<String, Object>> runs = new ArrayList<>();
        List<Double> lost = new ArrayList<>(), pauses = new ArrayList<>();
        int survived = 0, identical = 0, close = 0;
        for (int k = 1; k <= kills; k++) {
            int victim = 1 + random.nextInt(2), atStep = 2 + random.nextInt(steps - 2);
            long t0 = System.nanoTime();
            Outcome o = run(work, "run-" + k, corpus, 3, LoopbackCluster.freePort(), victim, atStep);
            double seconds = (System.nanoTime() - t0) / 1e9;
            Path run = o.code() == 0 ? runDir(work.resolve("run-" + k), 0) : null;
            boolean ok = run != null, same = ok && RunComparison.identical(reference, run, steps) == null;
            boolean near = ok && RunComparison.close(reference, run, steps) == null;
            survived += ok ? 1 : 0;
            identical += same ? 1 : 0;
            close += near ? 1 : 0;
            if (o.stepsLost() >= 0) lost.add((double) o.stepsLost());
            if (!Double.isNaN(o.pauseSeconds())) pauses.add(o.pauseSeconds());
            table.row(k, victim, atStep, ok, same, near, o.stepsLost() < 0 ? "-" : o.stepsLost(),
                    Double.isNaN(o.pauseSeconds()) ? "-" : String.format(Locale.ROOT, "%.1f", o.pauseSeconds()), String.format("%.0f", seconds));
            Map<String, Object> r = new LinkedHashMap<>();
            r.put("node_killed", victim);
            r.put("after_step", atStep);
            r.put("survived", ok);
            r.put("identical", same);
            r.put("within_tolerance", near);
            r.put("steps_lost", o.stepsLost());
            r.put("pause_s", Double.isNaN(o.pauseSeconds()) ? null : o.pauseSeconds());
            r.put("seconds", seconds);
            runs.add(r);
            System.out.printf("run %d: node %d killed after step %d: %s%n", k, victim, atStep, !ok ? "did not survive (exit "
                    + o.code() + ", log " + work.resolve("run-" + k + ".log") + ")" : same ? "identical" : near ? "within tolerance" : "survived, not within tolerance");
        }
        table.print(System.out);
        System.out.printf(Locale.ROOT, "runs %d, survived %d, identical %d, within tolerance %d, median steps lost %s, median pause %s s%n", kills,
                survived, identical, close, median(lost), median(pauses) == null ? "-" : String.format(Locale.ROOT, "%.1f", median(pauses)));
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("runs", kills);
        out.put("survived", survived);
        out.put("identical", identical);
        out.put("within_tolerance", close);
        out.put("median_steps_lost", median(lost));
        out.put("median_pause_s", median(pauses));
        out.put("seed", s);
        out.put("steps", steps);
        out.put("mode", mode);
        out.put("replicas", replicas);
        out.put("each", runs);
        json.write(out);
        return 0;
    }

    /**
     * How a run ended: the coordinator's exit code; the completed steps it did again after the loss (the steps logged
     * when the worker was killed, less the step it went on from), and the seconds from the kill to the next step done
     * after it went on (−1 and NaN where no worker was killed or the run did not go on).
     */
    record Outcome(int code, int stepsLost, double pauseSeconds) {}

    /**
     * One run of {@code nodes} JVMs (the coordinator and its workers as child processes); with {@code victim} ≥ 1
     * that worker is killed once {@code atStep} steps are logged.
     */
    private Outcome run(Path work, String name, Path corpus, int nodes, int port, int victim, int atStep) throws IOException, InterruptedException {
        List<String> train = new ArrayList<>(List.of("train", "--model", "llama-tiny", "--data", corpus.toString(), "--steps",
                String.valueOf(steps), "--out", work.resolve(name).toString(), "batch=" + 2 * replicas, "seq=16", "microbatches=2", "eval-every=4",
                "eval-sequences=" + 4 * replicas, "trace-steps=0", "validation-fraction=0.1", "mode=" + mode, "replicas=" + replicas));
        if (nodes > 1) train.addAll(List.of("nodes=" + nodes, "relay.cluster.port=" + port, "relay.cluster.down-after=2s"));
        List<Process> workers = new ArrayList<>();
        try {
            for (int i = 1; i < nodes; i++) workers.add(start(LoopbackCluster.worker(port, i, nodes - 1, List.of()), work.resolve(name + "-node-" + i + ".log")));
            Process coordinator = start(RelayJvm.command(train), work.resolve(name + ".log"));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(RUN_LIMIT_SECONDS);
            long killedAt = 0;
            int logged = 0, from = -1;
            double pause = Double.NaN;
            while (coordinator.isAlive() && System.nanoTime() < deadline) {
                if (victim >= 1 && killedAt == 0 && stepsLogged(work.resolve(name)) >= atStep) {
                    workers.get(victim - 1).destroyForcibly();
                    killedAt = System.nanoTime();
                    logged = stepsLogged(work.resolve(name));
                }
                if (killedAt != 0 && from < 0) from = resumedAt(work.resolve(name));
                // The metrics are cut back to the step it went on from before it says so: a step after it is new.
                if (from >= 0 && Double.isNaN(pause) && stepsLogged(work.resolve(name)) > from) pause = (System.nanoTime() - killedAt) / 1e9;
                Thread.sleep(20);
            }
            if (coordinator.isAlive()) {
                coordinator.destroyForcibly().waitFor();
                return new Outcome(-1, -1, Double.NaN);
            }
            return new Outcome(coordinator.exitValue(), from < 0 ? -1 : logged - from, pause);
        } finally {
            for (Process w : workers) {
                if (!w.waitFor(30, TimeUnit.SECONDS)) w.destroyForcibly().waitFor();
            }
        }
    }

    /**
     * The step a run went on from after a restart (history.log: "resumed at step N of …", or 0 for a second "started:"
     * when there was nothing to go on from), or −1 before it did.
     */
    private static int resumedAt(Path out) throws IOException {
        if (!Files.isDirectory(out)) return -1;
        try (Stream<Path> runs = Files.list(out)) {
            Path h = runs.map(r -> r.resolve("history.log")).filter(Files::isRegularFile).findFirst().orElse(null);
            if (h == null) return -1;
            int from = -1, started = 0;
            for (String line : Files.readAllLines(h)) {
                java.util.regex.Matcher l = RESUMED.matcher(line);
                if (l.find()) from = Integer.parseInt(l.group(1));
                if (line.contains("  started: ") && ++started > 1) from = 0;
            }
            return from;
        }
    }

    private static final java.util.regex.Pattern RESUMED = java.util.regex.Pattern.compile("resumed at step (\\d+) of");

    /** The median, or null for none. */
    private static Double median(List<Double> values) {
        if (values.isEmpty()) return null;
        List<Double> v = values.stream().sorted().toList();
        int n = v.size();
        return n % 2 == 1 ? v.get(n / 2) : (v.get(n / 2 - 1) + v.get(n / 2)) / 2;
    }

    private static Process start(List<String> command, Path log) throws IOException {
        return new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    }

    private static int stepsLogged(Path out) throws IOException {
        if (!Files.isDirectory(out)) return 0;
        try (Stream<Path> runs = Files.list(out)) {
            Path m = runs.map(r -> r.resolve("metrics.jsonl")).filter(Files::isRegularFile).findFirst().orElse(null);
            return m == null ? 0 : Files.readAllLines(m).size();
        }
    }

    /** The run directory under {@code out}; the reference run must have ended well. */
    private static Path runDir(Path out, int code) throws IOException {
        if (code != 0) throw new IllegalStateException("the reference run (one JVM) failed with exit code " + code + "; see " + out + ".log");
        try (Stream<Path> runs = Files.list(out)) {
            return runs.findFirst().orElseThrow();
        }
    }

}
