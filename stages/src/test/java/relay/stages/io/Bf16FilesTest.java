package relay.stages.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import relay.stages.layers.Parameter;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.model.Precision;
import relay.stages.tensor.DType;
import relay.stages.tensor.Tensor;
import relay.stages.tensor.cpu.CpuDevice;

/**
 * bfloat16 in model files: a bfloat16 model's weights go to BF16 safetensors and come back with every bit; float32
 * files into a bfloat16 model round to nearest; export and checkpoint shards follow the model's dtype; a directory
 * says which dtype it is stored in.
 */
class Bf16FilesTest {
    static CpuDevice device;

    @TempDir
    Path dir;

    @BeforeAll
    static void open() {
        device = new CpuDevice("cpu-bf16-files", 1);
    }

    @AfterAll
    static void close() {
        device.close();
    }

    /** A tensor's stored 16-bit patterns, read from its memory (not through the widening download). */
    private static short[] bits(Tensor t) {
        assertEquals(DType.BF16, t.dtype(), t.describe());
        ByteBuffer b = device.view(t).order(ByteOrder.LITTLE_ENDIAN);
        short[] out = new short[Math.toIntExact(t.size())];
        for (int i = 0; i < out.length; i++) out[i] = b.getShort(2 * i);
        return out;
    }

    /** Every parameter's bits by name. */
    private static Map<String, short[]> bits(Model m) {
        Map<String, short[]> out = new LinkedHashMap<>();
        for (Parameter p : m.parameters()) out.put(p.name(), bits(p.value()));
        return out;
    }

    /**
     * Fills every parameter with random finite bfloat16 patterns of every magnitude — subnormals, signed zeros, the
     * largest finite — so a round trip that went through a lossy step anywhere would show.
     */
    private static void scramble(Model m, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        for (Parameter p : m.parameters()) {
            float[] v = new float[Math.toIntExact(p.size())];
            for (int i = 0; i < v.length; i++) {
                int b;
                do {
                    b = r.nextInt(0x10000);
                } while ((b & 0x7F80) == 0x7F80); // not infinite or NaN: a loaded model refuses them
                v[i] = Float.intBitsToFloat(b << 16);
            }
            v[0] = Float.intBitsToFloat(0x0001 << 16); // the smallest subnormal
            if (v.length > 2) {
                v[1] = -0.0f;
                v[2] = Float.intBitsToFloat(0x7F7F << 16); // the largest finite bfloat16
            }
            p.value().copyFrom(v);
        }
    }

    private static JsonObject config(Path d) throws IOException {
        return JsonParser.parseString(Files.readString(d.resolve("config.json"))).getAsJsonObject();
    }

    private static void assertEveryTensorIs(String dtype, Path file) {
        try (SafeTensors st = SafeTensors.open(file)) {
            st.entries().values().forEach(e -> assertEquals(dtype, e.dtype(), file.getFileName() + " " + e.name()));
        }
    }

    private static void assertSameBits(Map<String, short[]> want, Map<String, short[]> got) {
        assertEquals(want.keySet(), got.keySet());
        want.forEach((name, w) -> assertArrayEquals(w, got.get(name), name));
    }

    /**
     * Round to nearest, ties to even, found by measuring in double the distance to the two bfloat16 values around x
     * (the one with its low 16 bits cleared, and the next one away from zero).
     */
    static short nearest(float x) {
        int bits = Float.floatToRawIntBits(x);
        int towardZero = bits & 0xFFFF0000, awayFromZero = towardZero + 0x10000;
        double dTo = Math.abs((double) x - Float.intBitsToFloat(towardZero));
        double dAway = Math.abs((double) Float.intBitsToFloat(awayFromZero) - x);
        int chosen;
        if (dTo < dAway) chosen = towardZero;
        else if (dAway < dTo) chosen = awayFromZero;
        else chosen = ((towardZero >>> 16) & 1) == 0 ? towardZero : awayFromZero;
        return (short) (chosen >>> 16);
    }

    @Test
    void theOracleRoundsAsTheDefinitionSays() {
        assertEquals((short) 0x3F80, nearest(1.0f));
        assertEquals((short) 0x3F80, nearest(1.00390625f), "1 + 2⁻⁸ is a tie: to the even 1");
        assertEquals((short) 0x3F82, nearest(1.01171875f), "1 + 3·2⁻⁸ is a tie: to the even 1 + 2⁻⁶");
        assertEquals((short) 0x3F81, nearest(1.0040f), "just past the tie: up");
        assertEquals((short) 0xBF81, nearest(-1.0040f), "the same away from zero when negative");
    }

    @Test
    void aBfloat16ModelIsSavedAsBf16AndReadBackBitForBit() throws IOException {
        for (String preset : List.of("llama-tiny", "gpt2-tiny")) { // gpt2: Conv1D weights are transposed on the way out and in
            Path d = dir.resolve("rt-" + preset);
            Map<String, short[]> want;
            try (Model m = Model.initialize(ModelConfig.named(preset), device, 3, Precision.BF16)) {
                scramble(m, 11);
                want = bits(m);
                HfModelDirectory.save(m, d);
            }
            assertEquals("bfloat16", config(d).get("torch_dtype").getAsString());
            assertEveryTensorIs("BF16", d.resolve("model.safetensors"));
            assertEquals(DType.BF16, HfModelDirectory.storedDtype(d));
            try (Model back = HfModelDirectory.load(d, device, Precision.BF16)) {
                assertSameBits(want, bits(back));
            }
        }
    }

    @Test
    void theFileHoldsTheParametersBitsAsTheyAre() throws IOException {
        // The bytes on disk, read without SafeTensors: the header's offsets, then little-endian 16-bit words.
        Path d = dir.resolve("raw");
        short[] want;
        try (Model m = Model.initialize(ModelConfig.named("llama-tiny"), device, 4, Precision.BF16)) {
            scramble(m, 12);
            want = bits(m.parameters().get(m.parameters().size() - 1).value());
            String name = m.parameters().get(m.parameters().size() - 1).name();
            HfModelDirectory.save(m, d);
            byte[] file = Files.readAllBytes(d.resolve("model.safetensors"));
            ByteBuffer b = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN);
            int headerLength = (int) b.getLong(0);
            JsonObject entry = JsonParser.parseString(new String(file, 8, headerLength, StandardCharsets.UTF_8)).getAsJsonObject()
                    .getAsJsonObject(name);
            long begin = entry.getAsJsonArray("data_offsets").get(0).getAsLong();
            short[] got = new short[want.length];
            for (int i = 0; i < got.length; i++) got[i] = b.getShort((int) (8 + headerLength + begin + 2L * i));
            assertArrayEquals(want, got);
            assertEquals(2L * want.length, entry.getAsJsonArray("data_offsets").get(1).getAsLong() - begin);
        }
    }

    @Test
    void aFloat32FileIntoABfloat16ModelIsRoundedToNearest() throws IOException {
        Path d = dir.resolve("f32");
        Map<String, float[]> values = new TreeMap<>();
        try (Model m = Model.initialize(ModelConfig.named("gpt2-tiny"), device, 5)) {
            // float32 values with low bits set everywhere, ties included.
            SplittableRandom r = new SplittableRandom(13);
            for (Parameter p : m.parameters()) {
                float[] v = new float[Math.toIntExact(p.size())];
                for (int i = 0; i < v.length; i++) {
                    v[i] = (float) (r.nextGaussian() * 0.1);
                    if (i % 17 == 0) v[i] = Float.intBitsToFloat((Float.floatToRawIntBits(v[i]) & 0xFFFF0000) | 0x8000); // a tie
                }
                p.value().copyFrom(v);
                values.put(p.name(), v);
            }
            HfModelDirectory.save(m, d);
        }
        assertEquals("float32", config(d).get("torch_dtype").getAsString());
        assertEquals(DType.F32, HfModelDirectory.storedDtype(d));
        int changed = 0;
        try (Model m = HfModelDirectory.load(d, device, Precision.BF16)) {
            for (Parameter p : m.parameters()) {
                float[] v = values.get(p.name());
                short[] got = bits(p.value());
                short[] want = new short[v.length];
                for (int i = 0; i < v.length; i++) {
                    want[i] = nearest(v[i]);
                    if (Float.intBitsToFloat(want[i] << 16) != v[i]) changed++;
                }
                assertArrayEquals(want, got, p.name());
            }
        }
        assertNotEquals(0, changed, "the values were not already bfloat16");
    }

    @Test
    void exportOfABfloat16ModelIsBf16ByDefaultAtHalfTheBytes() throws IOException {
        Path src = dir.resolve("src");
        Map<String, short[]> want;
        try (Model m = Model.initialize(ModelConfig.named("llama-tiny"), device, 6, Precision.BF16)) {
            scramble(m, 14);
            want = bits(m);
            HfModelDirectory.save(m, src);
        }
        DType d = ModelExport.defaultDtype(src);
        assertEquals(DType.BF16, d);
        ModelExport.Result bf16 = ModelExport.export(src, dir.resolve("out-bf16"), d, ModelExport.SHARD_BYTES, device);
        ModelExport.Result f32 = ModelExport.export(src, dir.resolve("out-f32"), DType.F32, ModelExport.SHARD_BYTES, device);
        assertEquals("bfloat16", config(bf16.dir()).get("torch_dtype").getAsString());
        assertEquals("float32", config(f32.dir()).get("torch_dtype").getAsString());
        assertEveryTensorIs("BF16", bf16.dir().resolve("model.safetensors"));
        assertEveryTensorIs("F32", f32.dir().resolve("model.safetensors"));
        assertEquals(ModelConfig.named("llama-tiny").parameters() * 2, bf16.tensorBytes());
        assertEquals(f32.tensorBytes(), 2 * bf16.tensorBytes());
        try (Model a = HfModelDirectory.load(bf16.dir(), device, Precision.BF16);
             Model b = HfModelDirectory.load(f32.dir(), device, Precision.BF16)) {
            assertSameBits(want, bits(a));
            assertSameBits(want, bits(b)); // float32 holds every bfloat16 value: rounding it back is exact
        }
    }

    @Test
    void checkpointShardsOfABfloat16RunReadBackBitForBit() throws IOException {
        ModelConfig cfg = ModelConfig.named("gpt2-tiny");
        Path ckpt = dir.resolve("ckpt");
        Map<String, short[]> want;
        Map<String, float[]> state = new TreeMap<>();
        SplittableRandom r = new SplittableRandom(15);
        List<CheckpointShard.File> written = new ArrayList<>();
        try (Model m = Model.initialize(cfg, device, 7, Precision.BF16)) {
            scramble(m, 16);
            want = bits(m);
            // Two parts, as two pipeline stages write them, each with float32 optimizer state whose low bits are set.
            List<Parameter> ps = m.parameters();
            int half = ps.size() / 2;
            for (int part = 0; part < 2; part++) {
                List<SafeTensors.Tensor32> weights = new ArrayList<>();
                Map<String, float[]> s = new TreeMap<>();
                for (Parameter p : part == 0 ? ps.subList(0, half) : ps.subList(half, ps.size())) {
                    weights.add(new SafeTensors.Tensor32(p.name(), p.value().shape(), p.value().toArray()));
                    float[] moment = new float[Math.toIntExact(p.size())];
                    for (int i = 0; i < moment.length; i++) moment[i] = Float.intBitsToFloat(0x3F800000 | r.nextInt(1 << 23));
                    s.put(p.name() + "/m", moment);
                }
                state.putAll(s);
                CheckpointShard shard = new CheckpointShard("part" + part, cfg, "adamw", DType.BF16, weights, s);
                assertEquals(DType.BF16, shard.dtype());
                written.addAll(shard.write(ckpt));
            }
        }
        HfModelDirectory.writeConfig(cfg, ckpt, DType.BF16);
        Map<String, String> shardOf = new LinkedHashMap<>();
        for (CheckpointShard.File f : written) f.tensors().forEach(t -> shardOf.put(t, f.name()));
        HfModelDirectory.writeIndex(ckpt, shardOf);
        for (String part : List.of("part0", "part1")) {
            assertEveryTensorIs("BF16", ckpt.resolve("model-" + part + ".safetensors"));
            assertEveryTensorIs("F32", ckpt.resolve("optimizer-" + part + ".safetensors"));
        }
        assertEquals(DType.BF16, HfModelDirectory.storedDtype(ckpt));
        try (Model back = HfModelDirectory.load(ckpt, device, Precision.BF16)) {
            assertSameBits(want, bits(back));
        }
        for (String part : List.of("part0", "part1")) {
            try (SafeTensors st = SafeTensors.open(ckpt.resolve("optimizer-" + part + ".safetensors"))) {
                for (String name : st.entries().keySet()) assertArrayEquals(state.get(name), st.read(name), name);
            }
        }
    }

    @Test
    void aShardWithoutADtypeStaysFloat32() throws IOException {
        Path d = dir.resolve("plain");
        try (Model m = Model.initialize(ModelConfig.named("llama-tiny"), device, 8)) {
            List<SafeTensors.Tensor32> weights = new ArrayList<>();
            for (Parameter p : m.parameters()) weights.add(new SafeTensors.Tensor32(p.name(), p.value().shape(), p.value().toArray()));
            CheckpointShard shard = new CheckpointShard("", m.config(), "adamw", weights, Map.of());
            assertEquals(DType.F32, shard.dtype());
            shard.write(d);
        }
        assertEveryTensorIs("F32", d.resolve("model.safetensors"));
    }

    /** A directory with one BF16, F16 or F32 tensor (or two of different dtypes) and this config.json. */
    private Path stored(String name, String configJson, String... dtypes) throws IOException {
        Path d = Files.createDirectories(dir.resolve(name));
        Files.writeString(d.resolve("config.json"), configJson);
        // Written by hand: SafeTensors writes F32 and BF16 only, and float16 is what some published models hold.
        StringBuilder header = new StringBuilder("{");
        long offset = 0;
        for (int i = 0; i < dtypes.length; i++) {
            if (i > 0) header.append(',');
            header.append("\"t").append(i).append("\":{\"dtype\":\"").append(dtypes[i]).append("\",\"shape\":[2],\"data_offsets\":[")
                    .append(offset).append(',').append(offset + (dtypes[i].equals("F32") ? 8 : 4)).append("]}");
            offset += dtypes[i].equals("F32") ? 8 : 4;
        }
        byte[] json = header.append('}').toString().getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + json.length + (int) offset).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(json.length).put(json);
        Files.write(d.resolve("model.safetensors"), b.array());
        return d;
    }

    @Test
    void aDirectorysStoredDtypeComesFromItsConfigThenItsHeaders() throws IOException {
        assertEquals(DType.BF16, HfModelDirectory.storedDtype(stored("torch-bf16", "{\"torch_dtype\": \"bfloat16\"}", "BF16")));
        assertEquals(DType.BF16, HfModelDirectory.storedDtype(stored("dtype-bf16", "{\"dtype\": \"bfloat16\"}", "BF16")), "transformers 5's key");
        assertEquals(DType.F32, HfModelDirectory.storedDtype(stored("torch-f32", "{\"torch_dtype\": \"float32\"}", "BF16")),
                "config.json says what the model is");
        assertEquals(DType.F32, HfModelDirectory.storedDtype(stored("torch-f16", "{\"torch_dtype\": \"float16\"}", "F16")),
                "no float16 in Relay: float32 holds it exactly");
        assertEquals(DType.BF16, HfModelDirectory.storedDtype(stored("headers-bf16", "{}", "BF16", "BF16")));
        assertEquals(DType.BF16, HfModelDirectory.storedDtype(stored("auto-bf16", "{\"torch_dtype\": \"auto\"}", "BF16")));
        assertEquals(DType.F32, HfModelDirectory.storedDtype(stored("headers-f16", "{}", "F16")));
        assertEquals(DType.F32, HfModelDirectory.storedDtype(stored("headers-mixed", "{}", "BF16", "F32")), "mixed: float32 loses nothing");
    }
}
