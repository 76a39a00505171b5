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
import relay.actors.Nodes;
import relay.stages.data.PackedDataset;
import relay.stages.io.CheckpointShard;
import relay.stages.model.ModelConfig;
import relay.stages.text.BpeTrainer;
import relay.stages.text.Tokenizer;
import relay.stages.text.TokenizerJson;
import relay.stages.train.Batch;

/**
 * What checkpoints cost a run, measured in one run: steps without a checkpoint, then steps while one is written
 * exactly as {@link TrainingRun} writes it (the run's files, the engine's copy taken at the step boundary and
 * written while the steps go on, the manifest once every file is on disk). The extra time — the steps' slowdown,
 * the copy and the sealing — over the time of the steps between two checkpoints is the overhead.
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
                         long bytes, int every, double overhead, double foreground) {}

    private CheckpointBench() {}

    /** Runs {@code steps} plain steps and then a checkpoint and at least {@code steps} more, in {@code scratch}. */
    public static Result run(Map<String, Object> settings, int steps, Path scratch, PrintStream out) throws IOException {
        Config conf = ConfigFactory.parseMap(Map.of("relay.train", settings)).withFallback(ConfigFactory.load()).resolve();
        TrainConfig c = TrainConfig.from(conf);
        ModelConfig model = ModelConfig.named(c.model().name());
        Tokenizer tokenizer = TokenizerJson.load(BpeTrainer.train(List.of("a checkpoint's tokenizer.json"), 260, List.of(), n -> { }));
        List<Batch> microbatches = microbatches(c, model);
        try (Nodes nodes = c.optimizer().method().inPipeline() ? Nodes.local(ConfigFactory.empty()) : null;
             Engine engine = TrainingRun.engine(c, model, null, 0, nodes)) {
            out.println("training on the " + engine.describe());
            engine.step(microbatches);
            double plain = 0;
            for (int i = 0; i < steps; i++) plain += engine.step(microbatches).seconds();
            plain /= steps;
            out.printf("%d steps without a checkpoint: %.2f s each; now a checkpoint, written while the steps go on...%n", steps, plain);
            long t0 = System.nanoTime();
            Path dir = Checkpoint.begin(scratch, 1, model, tokenizer, new PackedDataset.Position(0, 0), c);
            CompletableFuture<List<CheckpointShard.File>> files = engine.writeCheckpoint(1, dir);
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
            return new Result(engine.describe(), plain, writing / n, take, write, seal, n, bytes, every, extra / (every * plain),
                    (write + seal) / (every * plain));
        }
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
