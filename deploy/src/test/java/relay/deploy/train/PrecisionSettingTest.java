package relay.deploy.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import relay.stages.data.PackedDataset;
import relay.stages.io.HfModelDirectory;
import relay.stages.io.ModelFileException;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.model.Precision;
import relay.stages.tensor.DType;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.text.BpeTrainer;
import relay.stages.text.Tokenizer;
import relay.stages.text.TokenizerJson;

/**
 * The dtype and activations settings: what "auto" becomes for a preset, a bfloat16 or float32 model directory and a
 * run directory; what a bad value says; and a checkpoint that records its run's precision and refuses a resume in another.
 */
class PrecisionSettingTest {
    @TempDir
    Path dir;

    private TrainConfig config(String model, String... given) throws IOException {
        return TrainConfig.from(SmallRuns.settings(SmallRuns.corpus(dir), model, given));
    }

    /** A model directory whose weights are held in {@code precision}'s dtype, with a tokenizer. */
    private Path model(String name, Precision precision) throws IOException {
        Path d = dir.resolve(name);
        try (CpuDevice device = new CpuDevice("precision", 1); Model m = Model.initialize(ModelConfig.named("llama-tiny"), device, 2, precision)) {
            HfModelDirectory.save(m, d);
        }
        TokenizerJson.write(BpeTrainer.train(List.of("in the beginning was the word"), 270, List.of(TokenizerJson.END_OF_TEXT), n -> { }), d);
        return d;
    }

    @Test
    void autoIsFloat32ForAPresetAndTheDirectorysOwnDtypeForAModel() throws IOException {
        assertEquals(Precision.F32, config("llama-tiny").precision());
        Path bf16 = model("bf16", Precision.BF16), f32 = model("f32", Precision.F32);
        assertEquals(Precision.BF16, config(bf16.toString()).precision(), "a bf16 directory stays bf16");
        assertEquals(Precision.F32, config(f32.toString()).precision());
        assertEquals(Precision.F32, config(bf16.toString(), "dtype = f32").precision(), "unless dtype says f32; activations follow it");
        assertEquals(new Precision(DType.BF16, DType.F32), config(f32.toString(), "dtype = bf16", "activations = f32").precision());
        assertEquals(new Precision(DType.F32, DType.BF16), config("llama-tiny", "activations = bfloat16").precision());
        assertEquals(Precision.BF16, config("llama-tiny", "dtype = bf16").precision());
    }

    @Test
    void aRunDirectoryIsStoredAsItsNewestCompleteCheckpoint() throws IOException {
        Path run = dir.resolve("run");
        Path older = Files.createDirectories(run.resolve("checkpoints/step-2")), newer = Files.createDirectories(run.resolve("checkpoints/step-10"));
        Path incomplete = Files.createDirectories(run.resolve("checkpoints/step-12"));
        Files.writeString(older.resolve("config.json"), "{\"torch_dtype\": \"float32\"}");
        Files.writeString(newer.resolve("config.json"), "{\"torch_dtype\": \"bfloat16\"}");
        Files.writeString(incomplete.resolve("config.json"), "{\"torch_dtype\": \"float32\"}");
        for (Path c : List.of(older, newer)) Files.writeString(c.resolve("manifest.json"), "{}");
        assertEquals(DType.BF16, TrainConfig.modelDtype(run.toString()), "step-10, not step-2 (older) nor step-12 (no manifest)");
    }

    @Test
    void aBadValueNamesTheSettingTheValueAndTheChoices() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> config("llama-tiny", "dtype = fp8"));
        assertEquals("configuration: relay.train.dtype must be f32, bf16 or auto (the model directory's own), not 'fp8'", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> config("llama-tiny", "activations = f64"));
        assertEquals("configuration: relay.train.activations must be f32, bf16 or auto (the dtype's), not 'f64'", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> config("llama-tiny", "dtype = fp16"));
        assertTrue(e.getMessage().startsWith("configuration: relay.train.dtype must be f32, bf16 or auto (the model directory's own), "
                + "not 'fp16': float16 is not supported"), e.getMessage());
        assertFalse(e.getMessage().contains("\n"));
    }

    @Test
    void aCheckpointRecordsItsPrecisionAndARunInAnotherIsRefused() throws IOException {
        Path model = model("tok", Precision.F32);
        Tokenizer tokenizer = Tokenizer.ofModel(model);
        Path run = dir.resolve("run");
        TrainConfig bf16 = config("llama-tiny", "dtype = bf16", "steps = 4");
        Path ckpt = Checkpoint.begin(run, 2, ModelConfig.named("llama-tiny"), tokenizer, new PackedDataset.Position(0, 4), bf16);
        Checkpoint.seal(ckpt, 2, List.of());
        JsonObject state = JsonParser.parseString(Files.readString(ckpt.resolve("trainer_state.json"))).getAsJsonObject();
        assertEquals("bf16", state.get("dtype").getAsString());
        assertEquals("bf16", state.get("activations").getAsString());
        assertEquals("bfloat16", JsonParser.parseString(Files.readString(ckpt.resolve("config.json"))).getAsJsonObject()
                .get("torch_dtype").getAsString());
        assertEquals(Precision.BF16, Checkpoint.trainerState(ckpt).precision());

        assertEquals(2, Checkpoint.resumable(ckpt, bf16).step(), "the same precision resumes");
        ModelFileException e = assertThrows(ModelFileException.class, () -> Checkpoint.resumable(ckpt, config("llama-tiny", "steps = 4")));
        assertEquals(ckpt.resolve("trainer_state.json") + ": written by a run with dtype bf16 and activations bf16, not f32 and f32; "
                + "resume with dtype=bf16 activations=bf16", e.getMessage());
        e = assertThrows(ModelFileException.class, () -> Checkpoint.resumable(ckpt, config("llama-tiny", "dtype = bf16", "activations = f32",
                "steps = 4")));
        assertTrue(e.getMessage().contains("not bf16 and f32"), e.getMessage());
    }

    @Test
    void aTrainerStateThatNamesNoDtypeIsOfAFloat32Run() throws IOException {
        Path ckpt = Files.createDirectories(dir.resolve("old"));
        Files.writeString(ckpt.resolve("trainer_state.json"),
                "{\"step\": 3, \"data_epoch\": 0, \"data_index\": 6, \"optimizer\": \"adalomo\", \"seed\": 1234}");
        assertEquals(Precision.F32, Checkpoint.trainerState(ckpt).precision());
    }
}
