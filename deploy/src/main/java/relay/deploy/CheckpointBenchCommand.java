package relay.deploy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import relay.actors.UpdateMode;
import relay.deploy.train.CheckpointBench;
import relay.optimizers.Method;

@Command(name = "checkpoint", mixinStandardHelpOptions = true,
        description = "What checkpoints cost: step time with and without one being written, in one run, as a fraction of the "
                + "training time between two checkpoints; with --nodes, on a cluster of JVMs on loopback, also what snapshots in "
                + "the nodes' memory after every step cost.")
final class CheckpointBenchCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--optimizer", description = "the run's optimizer (default ${DEFAULT-VALUE})")
    String optimizer = "adalomo";

    @Option(names = "--devices", description = "pipeline devices (default ${DEFAULT-VALUE})")
    int devices = 2;

    @Mixin
    PipelineOptions pipeline = new PipelineOptions(4, UpdateMode.EXACT);

    @Option(names = "--steps", description = "timed steps without a checkpoint, and at least as many while one is written (default ${DEFAULT-VALUE})")
    int steps = 3;

    @Option(names = "--every", description = "steps between two checkpoints (default ${DEFAULT-VALUE}, relay train's checkpoint-every)")
    int every = 400;

    @Option(names = "--nodes", description = "run on a cluster of this many JVMs on loopback, started here (this one coordinates, "
            + "nodes − 1 workers hold the devices) and measure snapshots too (default ${DEFAULT-VALUE}: this JVM only)")
    int nodes = 1;

    @Option(names = "--dir", description = "where the checkpoint is written (default: a temporary directory, deleted after)")
    Path dir;

    @Mixin
    JsonOption json;

    @Override
    public Integer call() throws Exception {
        Method.named(optimizer);
        Inputs.require(devices >= 1, "--devices", "≥ 1", devices);
        pipeline.check(modelOptions.batch);
        Inputs.require(steps >= 1, "--steps", "≥ 1", steps);
        Inputs.require(every >= 1, "--every", "≥ 1", every);
        Inputs.require(nodes >= 1 && nodes - 1 <= devices, "--nodes", "≥ 1, with no more workers than --devices " + devices, nodes);
        Inputs.require(nodes == 1 || Method.named(optimizer).inPipeline(), "--nodes", "1 for " + optimizer + ", which runs in the plain loop",
                nodes);
        Inputs.require(dir == null || !Files.exists(dir) || Files.isDirectory(dir), "--dir", "a directory", dir);
        Map<String, Object> settings = new LinkedHashMap<>();
        settings.put("model", modelOptions.model);
        settings.put("optimizer", optimizer);
        settings.put("batch", modelOptions.batch);
        settings.put("seq", modelOptions.seq);
        settings.put("devices", devices);
        settings.put("microbatches", pipeline.microbatches);
        settings.put("schedule", pipeline.schedule);
        settings.put("mode", pipeline.mode);
        settings.put("checkpoint-every", every);
        settings.put("trace-steps", 0);
        Path scratch = dir != null ? Files.createDirectories(dir) : Files.createTempDirectory("relay-checkpoint-bench");
        CheckpointBench.Result r;
        try {
            System.out.printf("%s, %s, batch %d × seq %d in %d microbatches on %d devices, a checkpoint every %d steps, written to %s%n",
                    modelOptions.model, optimizer, modelOptions.batch, modelOptions.seq, pipeline.microbatches, devices, every, scratch);
            try (LoopbackCluster.Workers cluster = new LoopbackCluster.Workers(nodes)) {
                r = CheckpointBench.run(settings, steps, scratch, System.out, nodes > 1 ? cluster::start : null);
            }
        } finally {
            if (dir == null) delete(scratch);
        }
        Table table = new Table("metric", "value")
                .row("engine", r.engine())
                .row("step without a checkpoint (s)", String.format("%.3f", r.plainStep()))
                .row("step while one is written (s)", String.format("%.3f", r.writingStep()))
                .row("steps while it was written", r.stepsWriting())
                .row("copy at the step boundary (s)", String.format("%.3f", r.take()))
                .row("copy to last file on disk (s)", String.format("%.3f", r.write()))
                .row("sealing: index, digests, manifest (s)", String.format("%.3f", r.seal()))
                .row("checkpoint size (MiB)", String.format("%.1f", r.bytes() / 1048576.0))
                .row("overhead at every " + every + " steps", String.format("%.4f", r.overhead()))
                .row("had training stopped to write it", String.format("%.4f", r.foreground()));
        CheckpointBench.Snapshots sn = r.snapshots();
        if (sn != null) {
            table.row("step without snapshots, alternating blocks (s)", String.format("%.3f", sn.plainStep()))
                    .row("step taking a snapshot in memory (s)", String.format("%.3f", sn.snapshotStep()))
                    .row("snapshots held, all nodes (MiB)", String.format("%.1f", sn.heldBytes() / 1048576.0))
                    .row("snapshot overhead, one every step", String.format("%.4f", sn.overhead()))
                    .row("snapshot-every = auto comes to (steps)", sn.autoEvery())
                    .row("snapshot overhead at that interval", String.format("%.4f", sn.autoOverhead()));
        }
        table.print(System.out);
        Map<String, Object> out = new LinkedHashMap<>(settings);
        out.put("engine", r.engine());
        out.put("plain_step_seconds", r.plainStep());
        out.put("writing_step_seconds", r.writingStep());
        out.put("steps_writing", r.stepsWriting());
        out.put("take_seconds", r.take());
        out.put("write_seconds", r.write());
        out.put("seal_seconds", r.seal());
        out.put("bytes", r.bytes());
        out.put("overhead", r.overhead());
        out.put("foreground_overhead", r.foreground());
        out.put("nodes", nodes);
        if (sn != null) {
            out.put("snapshot_plain_step_seconds", sn.plainStep());
            out.put("snapshot_step_seconds", sn.snapshotStep());
            out.put("snapshot_held_bytes", sn.heldBytes());
            out.put("snapshot_overhead", sn.overhead());
            out.put("snapshot_auto_every", sn.autoEvery());
            out.put("snapshot_auto_overhead", sn.autoOverhead());
        }
        json.write(out);
        return 0;
    }

    private static void delete(Path dir) throws java.io.IOException {
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path f : files.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(f);
        }
    }
}
