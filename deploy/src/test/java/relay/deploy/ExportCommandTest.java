package relay.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import relay.stages.io.HfModelDirectory;
import relay.stages.io.SafeTensors;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;

/** relay export end to end: a run's checkpoint becomes a clean directory whose loss relay eval reproduces, and LoRA's adapters a PEFT adapter. */
class ExportCommandTest {
    @TempDir
    Path dir;

    private Path corpus() throws Exception {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 60; i++) sb.append("In the beginning was the word, and the word was ").append(i % 7).append(".\n");
        return Files.writeString(dir.resolve("corpus.txt"), sb.toString());
    }

    private Path train(Path data, String... more) throws Exception {
        Path out = dir.resolve("runs-" + more[more.length - 1]);
        java.util.List<String> args = new java.util.ArrayList<>(java.util.List.of("train", "--data", data.toString(), "--steps", "2",
                "--out", out.toString(), "batch=2", "seq=16", "microbatches=2", "eval-every=2", "checkpoint-every=2", "trace-steps=0", "eval-sequences=4",
                "validation-fraction=0.1"));
        args.addAll(java.util.List.of(more).subList(0, more.length - 1));
        StringWriter err = new StringWriter();
        assertEquals(0, Cli.run(err, args.toArray(String[]::new)), err::toString);
        try (Stream<Path> s = Files.list(out)) {
            return s.findFirst().orElseThrow();
        }
    }



    @Test
    void anExportedRunEvaluatesToItsCheckpointsLoss() throws Exception {
        Path data = corpus(), run = train(data, "--model", "llama-tiny", "full");
        Path f32 = dir.resolve("export-f32"), bf16 = dir.resolve("export-bf16");
        Cli.output(0, "export", run.toString(), "--to", f32.toString());
        Cli.output(0, "export", run.toString(), "--to", bf16.toString(), "--dtype", "bf16");
        try (Stream<Path> s = Files.list(f32)) {
            assertTrue(s.map(p -> p.getFileName().toString()).noneMatch(n -> n.startsWith("optimizer") || n.equals("trainer_state.json")
                    || n.equals("manifest.json")), "no run state in an export");
        }
        assertTrue(Files.isRegularFile(f32.resolve("tokenizer.json")));
        double checkpoint = Cli.loss(Cli.output(0, "eval", "--model", run.toString(), "--data", data.toString(), "--seq", "16"));
        assertEquals(checkpoint, Cli.loss(Cli.output(0, "eval", "--model", f32.toString(), "--data", data.toString(), "--seq", "16")), 0.0,
                "float32 export: the same weights, the same loss to the printed digit");
        assertEquals(checkpoint, Cli.loss(Cli.output(0, "eval", "--model", bf16.toString(), "--data", data.toString(), "--seq", "16")), 0.01 * checkpoint,
                "bfloat16 export: the loss within bfloat16's rounding");
    }

    /** Without --dtype an export keeps the source's dtype: a bfloat16 model exports as BF16, unless --dtype f32 asks otherwise. */
    @Test
    void anExportKeepsTheSourcesDtypeUnlessTold() throws Exception {
        Path src = dir.resolve("bf16-model");
        try (CpuDevice d = new CpuDevice("bf16", 1);
             Model m = Model.initialize(ModelConfig.named("llama-tiny"), d, 3, relay.stages.model.Precision.BF16)) {
            HfModelDirectory.save(m, src);
        }
        Path kept = dir.resolve("kept"), widened = dir.resolve("widened");
        Cli.output(0, "export", src.toString(), "--to", kept.toString());
        Cli.output(0, "export", src.toString(), "--to", widened.toString(), "--dtype", "f32");
        for (Path out : java.util.List.of(kept, widened)) {
            String dtype = out == kept ? "BF16" : "F32";
            try (SafeTensors st = SafeTensors.open(out.resolve("model.safetensors"))) {
                st.entries().values().forEach(e -> assertEquals(dtype, e.dtype(), out + " " + e.name()));
            }
            assertEquals(out == kept ? "bfloat16" : "float32", JsonParser.parseString(Files.readString(out.resolve("config.json")))
                    .getAsJsonObject().get("torch_dtype").getAsString());
        }
        assertEquals(2 * Files.size(kept.resolve("model.safetensors")) - Files.size(widened.resolve("model.safetensors")),
                2 * headerBytes(kept.resolve("model.safetensors")) - headerBytes(widened.resolve("model.safetensors")),
                "the tensors of the bf16 export take half the bytes of the f32 one");
    }

    /** The bytes before a safetensors file's data: the length word and the header. */
    private static long headerBytes(Path file) throws java.io.IOException {
        byte[] head = java.util.Arrays.copyOf(Files.readAllBytes(file), 8);
        return 8 + java.nio.ByteBuffer.wrap(head).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong();
    }

    /** PEFT's meaning, checked independently: the merged weight is the base weight plus (alpha / r)·B·A, in float64. */
    @Test
    void aLoraRunExportsAPeftAdapterThatMakesItsMergedWeights() throws Exception {
        Path base = dir.resolve("base");
        try (CpuDevice d = new CpuDevice("base", 1); Model m = Model.initialize(ModelConfig.named("llama-tiny"), d, 3)) {
            HfModelDirectory.save(m, base);
        }
        Path data = corpus(), run = train(data, "--model", base.toString(), "--optimizer", "lora", "rank=4", "lora.alpha=8", "lora");
        Path out = dir.resolve("export-lora");
        Cli.output(0, "export", run.toString(), "--to", out.toString(), "--adapter");
        JsonObject config = JsonParser.parseString(Files.readString(out.resolve("adapter_config.json"))).getAsJsonObject();
        assertEquals(4, config.get("r").getAsInt());
        assertEquals(8.0, config.get("lora_alpha").getAsDouble());
        assertEquals("LORA", config.get("peft_type").getAsString());
        assertTrue(config.getAsJsonArray("target_modules").toString().contains("q_proj"));
        String q = "model.layers.1.self_attn.q_proj";
        try (SafeTensors adapter = SafeTensors.open(out.resolve("adapter_model.safetensors"));
             SafeTensors merged = SafeTensors.open(out.resolve("model.safetensors"));
             SafeTensors original = SafeTensors.open(base.resolve("model.safetensors"))) {
            float[] a = adapter.read("base_model.model." + q + ".lora_A.weight"), b = adapter.read("base_model.model." + q + ".lora_B.weight");
            int[] aShape = adapter.entries().get("base_model.model." + q + ".lora_A.weight").shape();
            int[] bShape = adapter.entries().get("base_model.model." + q + ".lora_B.weight").shape();
            int rank = aShape[0], in = aShape[1], outRows = bShape[0];
            assertEquals(4, rank);
            assertEquals(4, bShape[1]);
            float[] w0 = original.read(q + ".weight"), w = merged.read(q + ".weight");
            double maxDelta = 0;
            for (int i = 0; i < outRows; i++) {
                for (int j = 0; j < in; j++) {
                    double ba = 0;
                    for (int r = 0; r < rank; r++) ba += (double) b[i * rank + r] * a[r * in + j];
                    double want = w0[i * in + j] + 8.0 / 4 * ba;
                    assertEquals(want, w[i * in + j], 1e-5, q + "[" + i + "," + j + "]");
                    maxDelta = Math.max(maxDelta, Math.abs(ba));
                }
            }
            assertTrue(maxDelta > 0, "the adapters trained");
        }
    }
}
