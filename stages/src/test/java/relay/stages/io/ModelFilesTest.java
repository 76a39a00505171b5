package relay.stages.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import relay.stages.layers.Parameter;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;

class ModelFilesTest {
    static CpuDevice device;

    @TempDir
    Path dir;

    @BeforeAll
    static void open() {
        device = new CpuDevice("cpu-io", 1);
    }

    @AfterAll
    static void close() {
        device.close();
    }

    @Test
    void savedModelsLoadBackIdentically() throws IOException {
        for (String name : List.of("llama-tiny", "gpt2-tiny")) {
            Path out = dir.resolve(name);
            try (Model m = Model.initialize(ModelConfig.named(name), device, 9)) {
                HfModelDirectory.save(m, out);
                try (Model back = HfModelDirectory.load(out, device)) {
                    assertEquals(m.config(), back.config());
                    List<Parameter> a = m.parameters(), b = back.parameters();
                    for (int i = 0; i < a.size(); i++) assertArrayEquals(a.get(i).value().toArray(), b.get(i).value().toArray(), a.get(i).name());
                }
            }
        }
    }

    /** Hugging Face's GPT-2 keeps its projections as Conv1D, [in, out]; the file must too. */
    @Test
    void gpt2ProjectionsAreStoredAsConv1D() throws IOException {
        ModelConfig cfg = ModelConfig.named("gpt2-tiny");
        try (Model m = Model.initialize(cfg, device, 9)) {
            HfModelDirectory.save(m, dir);
            Parameter w = m.parameters().stream().filter(p -> p.name().equals("transformer.h.0.attn.c_attn.weight")).findFirst().orElseThrow();
            try (SafeTensors st = SafeTensors.open(dir.resolve("model.safetensors"))) {
                assertArrayEquals(new int[] {cfg.hidden(), 3 * cfg.hidden()}, st.entries().get(w.name()).shape());
                float[] stored = st.read(w.name()), ours = w.value().toArray();
                // stored[i][j] (in i, out j) = ours[j][i]
                assertEquals(ours[5 * cfg.hidden() + 2], stored[2 * 3 * cfg.hidden() + 5]);
                assertTrue(!st.entries().containsKey("lm_head.weight"), "tied head is not stored");
            }
            var config = JsonParser.parseString(Files.readString(dir.resolve("config.json"))).getAsJsonObject();
            assertEquals("GPT2LMHeadModel", config.getAsJsonArray("architectures").get(0).getAsString());
        }
    }

    @Test
    void halfPrecisionConvertsExactly() {
        assertEquals(1.0f, SafeTensors.halfToFloat((short) 0x3C00));
        assertEquals(-2.5f, SafeTensors.halfToFloat((short) 0xC100));
        assertEquals(65504f, SafeTensors.halfToFloat((short) 0x7BFF));
        assertEquals(0x1p-24f, SafeTensors.halfToFloat((short) 0x0001), "smallest subnormal");
        assertEquals(Float.NEGATIVE_INFINITY, SafeTensors.halfToFloat((short) 0xFC00));
        assertTrue(Float.isNaN(SafeTensors.halfToFloat((short) 0x7E00)));
    }

    /** A file written by hand: header JSON and raw bytes. */
    Path raw(String header, byte[] data) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h).put(data);
        Path f = dir.resolve("t" + System.nanoTime() + ".safetensors");
        Files.write(f, b.array());
        return f;
    }

    @Test
    void bf16AndF16AreConvertedOnLoad() throws IOException {
        ByteBuffer d = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        d.putShort((short) 0x3F80).putShort((short) 0xC020); // bf16 1.0, -2.5
        d.putShort((short) 0x3C00).putShort((short) 0x3800); // f16 1.0, 0.5
        Path f = raw("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                + "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[4,8]}}", d.array());
        try (SafeTensors st = SafeTensors.open(f)) {
            assertArrayEquals(new float[] {1f, -2.5f}, st.read("a"));
            assertArrayEquals(new float[] {1f, 0.5f}, st.read("b"));
        }
    }

    private String error(Path f) {
        ModelFileException e = assertThrows(ModelFileException.class, () -> SafeTensors.open(f).close());
        assertTrue(e.getMessage().startsWith(f.toString()), "names the file: " + e.getMessage());
        return e.getMessage();
    }

    @Test
    void malformedFilesAreReportedWithFileAndProblem() throws IOException {
        byte[] eight = new byte[8];
        assertTrue(error(raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", eight)).contains("truncated"));
        assertTrue(error(raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", eight)).contains("overlap"));
        assertTrue(error(raw("{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", eight)).contains("dtype I64"));
        assertTrue(error(raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", eight)).contains("needs 12 bytes"));
        assertTrue(error(raw("{not json", eight)).contains("not valid JSON"));
        Path tiny = dir.resolve("tiny.safetensors");
        Files.write(tiny, new byte[] {1, 2, 3});
        assertTrue(error(tiny).contains("truncated"));
        Path huge = dir.resolve("huge.safetensors");
        Files.write(huge, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1L << 40).array());
        assertTrue(error(huge).contains("header length"));
    }

    @Test
    void aDirectoryThatDoesNotFitItsConfigIsRejected() throws IOException {
        try (Model m = Model.initialize(ModelConfig.named("llama-tiny"), device, 9)) {
            HfModelDirectory.save(m, dir);
        }
        Path weights = dir.resolve("model.safetensors");
        // Drop one tensor: rewrite the file without the final norm.
        List<SafeTensors.Tensor32> kept = new java.util.ArrayList<>();
        try (SafeTensors st = SafeTensors.open(weights)) {
            for (var e : st.entries().values()) {
                if (!e.name().equals("model.norm.weight")) kept.add(new SafeTensors.Tensor32(e.name(), e.shape(), st.read(e.name())));
            }
        }
        SafeTensors.write(weights, kept, Map.of());
        ModelFileException e = assertThrows(ModelFileException.class, () -> HfModelDirectory.load(dir, device));
        assertTrue(e.getMessage().contains("'model.norm.weight' is missing"), e.getMessage());
        // A shape that does not match config.json.
        kept.add(new SafeTensors.Tensor32("model.norm.weight", new int[] {7}, new float[7]));
        SafeTensors.write(weights, kept, Map.of());
        e = assertThrows(ModelFileException.class, () -> HfModelDirectory.load(dir, device));
        assertTrue(e.getMessage().contains("has shape [7] but config.json implies [128]"), e.getMessage());
        // An extra tensor the config knows nothing of.
        kept.set(kept.size() - 1, new SafeTensors.Tensor32("model.norm.weight", new int[] {128}, new float[128]));
        kept.add(new SafeTensors.Tensor32("model.layers.9.mlp.up_proj.weight", new int[] {2}, new float[2]));
        SafeTensors.write(weights, kept, Map.of());
        e = assertThrows(ModelFileException.class, () -> HfModelDirectory.load(dir, device));
        assertTrue(e.getMessage().contains("unexpected tensors [model.layers.9.mlp.up_proj.weight]"), e.getMessage());
        // Weights that are not finite numbers (a diverged run's) are refused, naming the tensor.
        float[] nan = new float[128];
        nan[5] = Float.NaN;
        kept.remove(kept.size() - 1);
        kept.set(kept.size() - 1, new SafeTensors.Tensor32("model.norm.weight", new int[] {128}, nan));
        SafeTensors.write(weights, kept, Map.of());
        e = assertThrows(ModelFileException.class, () -> HfModelDirectory.load(dir, device));
        assertTrue(e.getMessage().contains("tensor 'model.norm.weight' holds NaN at index 5"), e.getMessage());
        Files.delete(weights);
        e = assertThrows(ModelFileException.class, () -> HfModelDirectory.load(dir, device));
        assertTrue(e.getMessage().contains("no model.safetensors"), e.getMessage());
        e = assertThrows(ModelFileException.class, () -> HfModelDirectory.load(dir.resolve("absent"), device));
        assertEquals(dir.resolve("absent") + ": no such model directory", e.getMessage());
        assertEquals(0, device.memory().currentTotal(), "nothing leaked by failed loads: " + Arrays.toString(new long[] {device.memory().currentTotal()}));
    }
}
