package relay.stages.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
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
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import relay.stages.layers.Parameter;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.DType;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.text.BpeTrainer;
import relay.stages.text.TokenizerJson;

/** Export makes a clean Hugging Face directory: the same weights (exactly, or bfloat16-rounded), shards with an index, no run state. */
class ModelExportTest {
    static CpuDevice device;

    @TempDir
    Path dir;

    @BeforeAll
    static void open() {
        device = new CpuDevice("cpu-export", 1);
    }

    @AfterAll
    static void close() {
        device.close();
    }

    /** A checkpoint-like source: a model directory with tokenizer files and a run's state beside the weights. */
    private Path source(String preset) throws IOException {
        Path src = dir.resolve("src-" + preset);
        try (Model m = Model.initialize(ModelConfig.named(preset), device, 5)) {
            HfModelDirectory.save(m, src);
        }
        TokenizerJson.write(BpeTrainer.train(List.of("a checkpoint's own tokenizer"), 270, List.of("<|endoftext|>", "</s>"), n -> { }), src);
        Files.writeString(src.resolve("tokenizer_config.json"), "{\"eos_token\":\"</s>\"}");
        Files.writeString(src.resolve("trainer_state.json"), "{\"step\":3}");
        Files.writeString(src.resolve("manifest.json"), "{}");
        SafeTensors.write(src.resolve("optimizer.safetensors"), List.of(new SafeTensors.Tensor32("w/m", new int[] {1}, new float[] {1f})),
                Map.of());
        return src;
    }

    private static List<String> files(Path d) throws IOException {
        try (var s = Files.list(d)) {
            return s.map(f -> f.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void float32ExportHoldsTheSameWeightsAndNoRunState() throws IOException {
        Path src = source("llama-tiny"), out = dir.resolve("out");
        ModelExport.Result r = ModelExport.export(src, out, DType.F32, ModelExport.SHARD_BYTES, device);
        assertEquals(List.of("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"), files(out));
        assertEquals(r.files(), files(out));
        assertEquals(Files.readString(src.resolve("tokenizer_config.json")), Files.readString(out.resolve("tokenizer_config.json")));
        // The source had no generation_config.json: one is made naming the end-of-sequence token, </s>, by its id in tokenizer.json.
        int eos = JsonParser.parseString(Files.readString(src.resolve("tokenizer.json"))).getAsJsonObject().getAsJsonArray("added_tokens")
                .asList().stream().map(t -> t.getAsJsonObject()).filter(t -> t.get("content").getAsString().equals("</s>"))
                .findFirst().orElseThrow().get("id").getAsInt();
        assertEquals(eos, JsonParser.parseString(Files.readString(out.resolve("generation_config.json"))).getAsJsonObject()
                .get("eos_token_id").getAsInt());
        assertEquals("float32", config(out).get("torch_dtype").getAsString());
        try (Model a = HfModelDirectory.load(src, device); Model b = HfModelDirectory.load(out, device)) {
            assertEquals(ModelConfig.named("llama-tiny").parameters() * 4, r.tensorBytes());
            for (int i = 0; i < a.parameters().size(); i++) {
                assertArrayEquals(a.parameters().get(i).value().toArray(), b.parameters().get(i).value().toArray());
            }
        }
        assertFalse(Files.exists(dir.resolve("out.export-tmp")));
    }

    /** Round to nearest bfloat16, ties to even, found by comparing the two neighbours (not by the writer's bit arithmetic). */
    private static float nearestBfloat16(float v) {
        float down = Float.intBitsToFloat(Float.floatToRawIntBits(v) & 0xFFFF0000);
        float up = Float.intBitsToFloat((Float.floatToRawIntBits(v) & 0xFFFF0000) + 0x10000);
        double dDown = Math.abs((double) v - down), dUp = Math.abs((double) up - v);
        if (dDown != dUp) return dDown < dUp ? down : up;
        return ((Float.floatToRawIntBits(down) >>> 16) & 1) == 0 ? down : up;
    }

    @Test
    void bfloat16ExportRoundsEveryWeightToNearestAndSaysSo() throws IOException {
        Path src = source("gpt2-tiny"), out = dir.resolve("bf16");
        ModelExport.Result r = ModelExport.export(src, out, DType.BF16, ModelExport.SHARD_BYTES, device);
        assertEquals("bfloat16", config(out).get("torch_dtype").getAsString());
        assertEquals(ModelConfig.named("gpt2-tiny").parameters() * 2, r.tensorBytes());
        try (SafeTensors st = SafeTensors.open(out.resolve("model.safetensors"))) {
            st.entries().values().forEach(e -> assertEquals("BF16", e.dtype(), e.name()));
        }
        try (Model a = HfModelDirectory.load(src, device); Model b = HfModelDirectory.load(out, device)) {
            for (int i = 0; i < a.parameters().size(); i++) {
                float[] want = a.parameters().get(i).value().toArray(), got = b.parameters().get(i).value().toArray();
                for (int j = 0; j < want.length; j++) assertEquals(nearestBfloat16(want[j]), got[j], a.parameters().get(i).name() + "[" + j + "]");
            }
        }
        assertEquals(1.0f, nearestBfloat16(1.00390625f), "a tie (1 + 2⁻⁸) goes to the even neighbour");
        // 1 + 3·2⁻⁸ lies halfway between 1 + 2⁻⁷ (mantissa 1, odd) and 1 + 2·2⁻⁷ (mantissa 2, even): ties go to even, 0x3F82.
        assertEquals((short) 0x3F82, SafeTensors.toBfloat16(1.01171875f));
    }

    @Test
    void largeModelsAreShardedWithAnIndexGivingTheTotalSize() throws IOException {
        Path src = source("llama-tiny"), out = dir.resolve("sharded");
        ModelConfig cfg = ModelConfig.named("llama-tiny");
        ModelExport.Result r = ModelExport.export(src, out, DType.F32, cfg.parameters(), device);
        List<String> shards = files(out).stream().filter(f -> f.matches("model-\\d{5}-of-\\d{5}\\.safetensors")).toList();
        assertTrue(shards.size() >= 2, "shards " + shards);
        assertTrue(shards.get(shards.size() - 1).endsWith("-of-" + String.format("%05d", shards.size()) + ".safetensors"));
        JsonObject index = JsonParser.parseString(Files.readString(out.resolve("model.safetensors.index.json"))).getAsJsonObject();
        assertEquals(cfg.parameters() * 4, index.getAsJsonObject("metadata").get("total_size").getAsLong());
        assertEquals(r.tensorBytes(), cfg.parameters() * 4);
        try (Model a = HfModelDirectory.load(src, device); Model b = HfModelDirectory.load(out, device)) {
            List<Parameter> pa = a.parameters(), pb = b.parameters();
            for (int i = 0; i < pa.size(); i++) assertArrayEquals(pa.get(i).value().toArray(), pb.get(i).value().toArray());
        }
    }

    @Test
    void aNonEmptyTargetIsRefusedAndLeftAlone() throws IOException {
        Path src = source("llama-tiny"), out = dir.resolve("taken");
        Files.createDirectories(out);
        Files.writeString(out.resolve("keep.txt"), "mine");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ModelExport.export(src, out, DType.F32, ModelExport.SHARD_BYTES, device));
        assertTrue(e.getMessage().contains("not empty"), e.getMessage());
        assertEquals(List.of("keep.txt"), files(out));
    }

    private static JsonObject config(Path d) throws IOException {
        return JsonParser.parseString(Files.readString(d.resolve("config.json"))).getAsJsonObject();
    }
}
