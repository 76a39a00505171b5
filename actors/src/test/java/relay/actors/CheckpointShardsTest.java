package relay.actors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import relay.optimizers.Method;
import relay.stages.io.CheckpointShard;
import relay.stages.io.HfModelDirectory;
import relay.stages.io.SafeTensors;
import relay.stages.io.Sha256;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.train.Batch;

/**
 * The shards the stages write of a checkpoint, read back as a Hugging Face model directory and as optimizer
 * state, hold the pipeline's weights and state at the step boundary they were taken at, though the pipeline
 * stepped on while they were written; a shard that cannot be written fails the checkpoint, not the pipeline.
 */
class CheckpointShardsTest {
    @TempDir
    Path dir;

    /** GPT-2: the tied table is written once, by the embedding, and read back into the head too. */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"llama", "gpt2"})
    void theShardsHoldTheWeightsAndStateOfTheirStepThoughTrainingGoesOn(String family) throws Exception {
        ModelConfig cfg = family.equals("llama") ? PipelineEquivalenceTest.LLAMA : PipelineEquivalenceTest.GPT2;
        List<List<Batch>> data = PipelineResumeTest.data(cfg);
        int[] devices = new int[cfg.layers() + 2];
        for (int i = devices.length / 2; i < devices.length; i++) devices[i] = 1;
        try (Pipeline p = Pipeline.start(cfg, PipelineEquivalenceTest.SEED, new Placement(2, devices),
                PipelineConfig.defaults(Method.ADAMW, 0.01f), PipelineEquivalenceTest.SERIALIZE)) {
            assertTrue(p.step(data.get(0)).ok());
            Map<String, float[]> weights = p.weights(), state = new TreeMap<>(p.optimizerState());
            Path checkpoint = dir.resolve("step-1");
            CompletableFuture<List<CheckpointShard.File>> written = p.writeShards(1, checkpoint, 0);
            assertTrue(p.step(data.get(1)).ok(), "the pipeline trains on while its shards are written");
            List<CheckpointShard.File> files = written.get(60, TimeUnit.SECONDS);
            assertEquals(2 * (cfg.layers() + 2), files.size(), "a model and an optimizer file per stage");

            Map<String, String> shardOfTensor = new LinkedHashMap<>();
            Map<String, float[]> stored = new TreeMap<>();
            for (CheckpointShard.File f : files) {
                assertEquals(Sha256.of(checkpoint.resolve(f.name())), f.sha256(), f.name());
                f.tensors().forEach(t -> assertEquals(null, shardOfTensor.put(t, f.name()), t + " is in one shard only"));
                if (f.name().startsWith("optimizer-")) {
                    try (SafeTensors st = SafeTensors.open(checkpoint.resolve(f.name()))) {
                        for (String n : st.entries().keySet()) stored.put(n, st.read(n));
                    }
                }
            }
            HfModelDirectory.writeConfig(cfg, checkpoint);
            HfModelDirectory.writeIndex(checkpoint, shardOfTensor);
            try (CpuDevice d = new CpuDevice("check", 1); Model m = HfModelDirectory.load(checkpoint, d)) {
                Map<String, float[]> loaded = m.values();
                assertEquals(new TreeMap<>(weights).keySet(), new TreeMap<>(loaded).keySet());
                weights.forEach((n, w) -> assertArrayEquals(w, loaded.get(n), n));
            }
            assertEquals(state.keySet(), stored.keySet());
            state.forEach((n, v) -> assertArrayEquals(v, stored.get(n), n));
        }
    }

    @Test
    void aShardThatCannotBeWrittenFailsItsCheckpointAndThePipelineTrainsOn() throws Exception {
        Path notADirectory = Files.writeString(dir.resolve("a-file"), "a file");
        List<List<Batch>> data = PipelineResumeTest.data(PipelineEquivalenceTest.LLAMA);
        try (Pipeline p = Pipeline.start(PipelineEquivalenceTest.LLAMA, PipelineEquivalenceTest.SEED, PipelineEquivalenceTest.placement(2),
                PipelineConfig.defaults(Method.ADAMW, 0.01f), PipelineEquivalenceTest.SERIALIZE)) {
            var failed = assertThrows(ExecutionException.class, () -> p.writeShards(1, notADirectory.resolve("step-1"), 0).get(60, TimeUnit.SECONDS));
            // Told as the stage's file that could not be written, the cause kept.
            assertTrue(failed.getCause().getCause() instanceof relay.stages.io.UnwritableFile, failed.getCause().toString());
            assertTrue(failed.getCause().getMessage().matches(".*\\(stage \\d\\): cannot write .*a-file/step-1/\\S+\\.safetensors: Not a directory"),
                    failed.getCause().getMessage());
            assertTrue(p.step(data.get(0)).ok());
        }
    }
}
