package relay.deploy.train;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.function.Supplier;
import relay.actors.Nodes;
import relay.stages.data.PackedDataset;
import relay.stages.io.CheckpointShard;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;
import relay.stages.text.BpeTrainer;
import relay.stages.text.Tokenizer;
import relay.stages.text.TokenizerJson;
import relay.stages.train.Batch;

/**
 * What checkpoints cost a run, measured in one run: steps without a checkpoint, then steps while one is written
 * exactly as {@link TrainingRun} writes it (the run's files, the engine's copy taken at the step boundary and
 * written while the steps go on, the manifest once every file is on disk). The extra time — the steps' slowdown,
 * the copy and the sealing — over the time of the steps between two checkpoints is the overhead. On a cluster it
 * then measures snapshots in the nodes' memory as {@link TrainingRun} takes them, one after every step: blocks of
 * steps with and without them, alternated so that the machine's drift falls on both.
 */
public final class CheckpointBench {
    /**
     * @param plainStep     mean seconds of a step with no checkpoint being written
     * @param writingStep   mean seconds of the steps run while the checkpoint was written
     * @param take          seconds the step loop waited for the copy (and the run's own files)
     * @param write         seconds from the copy to the last file on disk
     * @param seal          seconds the step loop spent sealing (index, digests of the run's files, manifest) and waiting
     * @param stepsWriting  steps run while the checkpoint was being written
     * @param bytes         bytes of the checkpoint's files
     * @param overhead      extra seconds per checkpoint over the steps between two: (Σ writing − n·plain + take + seal) / (every·plain)
     * @param foreground    the same fraction had training stopped until the checkpoint was on disk: (write + seal) / (every·plain)
     */
    public record Result(String engine, double plainStep, double writingStep, double take, double write, double seal, int stepsWriting,
                         long bytes, int every, double overhead, double foreground, Snapshots snapshots) {}

    /**
     * Snapshots after every step, on a cluster.
     *
     * @param plainStep    mean seconds of a step in the blocks without snapshots
     * @param snapshotStep mean seconds of a step that first snapshots the state it starts from (sent while it runs)
     * @param heldBytes    the most bytes of snapshots the nodes held together (their ledgers' snapshot category)
     * @param overhead     snapshotStep / plainStep − 1: the cost of one after every step
     * @param autoEvery    the interval {@code snapshot-every = auto} comes to at this cost: the fewest steps that keep it within its budget
     * @param autoOverhead the cost at that interval
     */
    public record Snapshots(double plainStep, double snapshotStep, long heldBytes, double overhead, int autoEvery, double autoOverhead) {}

    /** Blocks of steps with and without snapshots, each kind this many times. */
    static final int SNAPSHOT_BLOCKS = 3;

    private CheckpointBench() {}

    /**
     * Runs {@code steps} plain steps and then a checkpoint and at least {@code steps} more, in {@code scratch}; with
     * {@code cluster} (null: in this JVM) on its nodes, then snapshot blocks of {@code steps} steps.
     */
    public static Result run(Map<String, Object> settings, int steps, Path scratch, PrintStream out, Supplier<Nodes> cluster) throws IOException {
        Config conf = ConfigFactory.parseMap(Map.of("relay.train", settings)).withFallback(ConfigFactory.load()).resolve();
        TrainConfig c = TrainConfig.from(conf);
        ModelConfig model = ModelConfig.named(c.model().name());
        Tokenizer tokenizer = TokenizerJson.load(BpeTrainer.train(List.of("a checkpoint's tokenizer.json"), 260, List.of(), n -> { }));
        List<Batch> microbatches = microbatches(c, model);
        try (Nodes local = cluster == null && c.optimizer().method().inPipeline() ? Nodes.local(ConfigFactory.empty()) : null;
             Engine engine = TrainingRun.engine(c, model, null, 0, cluster != null ? cluster.get() : local)) {
            out.println("training on the " + engine.describe());
            long held = Checkpoint.bytes(engine.step(microbatches).memory());
            double plain = 0;
            for (int i = 0; i < steps; i++) plain += engine.step(microbatches).seconds();
            plain /= steps;
            out.printf("%d steps without a checkpoint: %.2f s each; now a checkpoint, written while the steps go on...%n", steps, plain);
            long t0 = System.nanoTime();
            Path dir = Checkpoint.begin(scratch, 1, model, tokenizer, new PackedDataset.Position(0, 0), c);
            CompletableFuture<List<CheckpointShard.File>> files = engine.writeCheckpoint(1, dir, held);
            double take = (System.nanoTime() - t0) / 1e9;
            CompletableFuture<Long> writtenAt = files.thenApply(f -> System.nanoTime());
            double writing = 0;
            int n = 0;
            while (n < steps || !files.isDone()) {
                writing += engine.step(microbatches).seconds();
                n++;
            }
            long s0 = System.nanoTime();
            Checkpoint.seal(dir, 1, files.join());
            double seal = (System.nanoTime() - s0) / 1e9;
            Checkpoint.verify(dir);
            long bytes = 0;
            try (var all = Files.list(dir)) {
                for (Path f : all.toList()) bytes += Files.size(f);
            }
            int every = c.run().checkpointEvery();
            double write = (writtenAt.join() - t0) / 1e9, extra = writing - n * plain + take + seal;
            Snapshots snapshots = cluster == null ? null : snapshots(engine, microbatches, steps, 1 + steps + n, out);
            return new Result(engine.describe(), plain, writing / n, take, write, seal, n, bytes, every, extra / (every * plain),
                    (write + seal) / (every * plain), snapshots);
        }
    }

    /** Blocks of {@code steps} steps, without snapshots and with one at every step's start, alternated; {@code first}: the steps done before. */
    private static Snapshots snapshots(Engine engine, List<Batch> microbatches, int steps, int first, PrintStream out) {
        out.printf("%d blocks of %d steps without snapshots and %d with one after every step, alternated...%n", SNAPSHOT_BLOCKS, steps,
                SNAPSHOT_BLOCKS);
        double plain = 0, snapshotting = 0;
        int step = first;
        long held = 0;
        for (int b = 0; b < 2 * SNAPSHOT_BLOCKS; b++) {
            boolean with = b % 2 == 1;
            for (int i = 0; i < steps; i++, step++) {
                Engine.Step st = engine.step(microbatches, with ? step : 0);
                if (with) snapshotting += st.seconds();
                else plain += st.seconds();
                held = Math.max(held, st.memory().getOrDefault(Category.SNAPSHOTS, 0L));
            }
            // An untimed step between blocks takes the last snapshot's sending, which would otherwise fall on a plain block.
            engine.step(microbatches);
            step++;
        }
        int n = SNAPSHOT_BLOCKS * steps;
        double overhead = snapshotting / plain - 1;
        int auto = SnapshotPace.stepsApart(snapshotting - plain, plain);
        return new Snapshots(plain / n, snapshotting / n, held, overhead, auto, overhead / auto);
    }

    /** Random tokens of the model's vocabulary, the run's microbatches' shape. */
    private static List<Batch> microbatches(TrainConfig c, ModelConfig model) {
        Random r = new Random(c.run().seed());
        int b = c.microbatchSize(), t = c.run().seq();
        return java.util.stream.IntStream.range(0, c.pipeline().microbatches()).mapToObj(j -> {
            int[] in = new int[b * t], target = new int[b * t];
            for (int i = 0; i < in.length; i++) {
                in[i] = r.nextInt(model.vocabSize());
                target[i] = r.nextInt(model.vocabSize());
            }
            return new Batch(in, target, b, t);
        }).toList();
    }
}
