package relay.stages.io;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonElement;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import relay.stages.layers.Parameter;
import relay.stages.model.Family;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.model.Precision;
import relay.stages.tensor.DType;
import relay.stages.tensor.Device;

/**
 * A Hugging Face model directory: {@code config.json} plus {@code model.safetensors} (or shards listed in
 * {@code model.safetensors.index.json}), with the tensor names and layouts of transformers'
 * LlamaForCausalLM and GPT2LMHeadModel. GPT-2's projections are Conv1D in Hugging Face, stored [in, out]:
 * they are transposed on the way in and out, since Relay keeps every linear weight [out, in].
 *
 * <p>Weights are written in the dtype the model holds them in (float32 or bfloat16, config.json's
 * {@code torch_dtype} saying which) and read into parameters of any dtype: a bfloat16 file into a bfloat16 model
 * keeps every value's bits, a float32 file into one is rounded to nearest (ties to even).
 */
public final class HfModelDirectory {
    private HfModelDirectory() {}

    /** Buffers some checkpoints carry that are not parameters. */
    private static boolean isBuffer(String name) {
        return name.endsWith(".attn.bias") || name.endsWith(".attn.masked_bias") || name.endsWith("rotary_emb.inv_freq");
    }

    private static boolean isConv1D(ModelConfig cfg, String name) {
        return cfg.family() == Family.GPT2 && (name.endsWith("attn.c_attn.weight") || name.endsWith("attn.c_proj.weight")
                || name.endsWith("mlp.c_fc.weight") || name.endsWith("mlp.c_proj.weight"));
    }

    static float[] transpose(float[] m, int rows, int cols) {
        float[] t = new float[m.length];
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) t[j * rows + i] = m[i * cols + j];
        return t;
    }

    /** Writes config.json and model.safetensors into dir, creating it, in the dtype the model holds its weights in ({@link #dtypeOf}). */
    public static void save(Model model, Path dir) throws IOException {
        List<SafeTensors.Tensor32> tensors = new ArrayList<>();
        for (Parameter p : model.parameters()) tensors.add(new SafeTensors.Tensor32(p.name(), p.value().shape(), p.value().toArray()));
        save(model.config(), tensors, dir, dtypeOf(model.parameters()));
    }

    /** Writes a model of this config from its parameters' values (named as Relay names them, [out, in] linears) into dir, in float32. */
    public static void save(ModelConfig cfg, List<SafeTensors.Tensor32> parameters, Path dir) throws IOException {
        save(cfg, parameters, dir, DType.F32);
    }

    /** The same, the weights stored as {@code dtype} and config.json saying so. */
    public static void save(ModelConfig cfg, List<SafeTensors.Tensor32> parameters, Path dir, DType dtype) throws IOException {
        writeConfig(cfg, dir, dtype);
        writeShard(cfg, parameters, dir.resolve("model.safetensors"), dtype);
    }

    /**
     * The dtype to store these parameters in without changing a value: bfloat16 when every one is held in bfloat16,
     * else float32 (which holds every bfloat16 value exactly).
     */
    public static DType dtypeOf(List<Parameter> parameters) {
        if (parameters.isEmpty()) return DType.F32;
        for (Parameter p : parameters) if (p.value().dtype() != DType.BF16) return DType.F32;
        return DType.BF16;
    }

    /** Writes dir/config.json, creating dir, for float32 weights. */
    public static void writeConfig(ModelConfig cfg, Path dir) throws IOException {
        writeConfig(cfg, dir, DType.F32);
    }

    /** Writes dir/config.json, creating dir, its {@code torch_dtype} naming the dtype the weights are stored in. */
    public static void writeConfig(ModelConfig cfg, Path dir, DType dtype) throws IOException {
        Files.createDirectories(dir);
        FileWrites.writeString(dir.resolve("config.json"),
                new GsonBuilder().setPrettyPrinting().serializeNulls().create().toJson(configJson(cfg, dtype)) + "\n");
    }

    /**
     * Writes parameters of a model of this config to one safetensors file in transformers' layouts: the whole
     * model's model.safetensors, or one shard of it that {@link #writeIndex} lists. Returns the file's SHA-256.
     */
    public static String writeShard(ModelConfig cfg, List<SafeTensors.Tensor32> parameters, Path file) throws IOException {
        return writeShard(cfg, parameters, file, DType.F32);
    }

    /** The same, stored as {@code dtype}: a bfloat16 value (one a bfloat16 parameter holds) is written with its bits. */
    public static String writeShard(ModelConfig cfg, List<SafeTensors.Tensor32> parameters, Path file, DType dtype) throws IOException {
        List<SafeTensors.Tensor32> tensors = new ArrayList<>();
        for (SafeTensors.Tensor32 t : parameters) {
            int[] shape = t.shape();
            tensors.add(isConv1D(cfg, t.name()) ? new SafeTensors.Tensor32(t.name(), new int[] {shape[1], shape[0]},
                    transpose(t.values(), shape[0], shape[1])) : t);
        }
        return SafeTensors.write(file, tensors, Map.of("format", "pt"), dtype);
    }

    /**
     * Writes dir/model.safetensors.index.json: the shard file (a name in dir) that holds each tensor, and as
     * transformers writes it, {@code metadata.total_size}, the bytes of all the tensors (read from the shards' headers).
     */
    public static void writeIndex(Path dir, Map<String, String> shardOfTensor) throws IOException {
        JsonObject map = new JsonObject();
        new java.util.TreeMap<>(shardOfTensor).forEach(map::addProperty);
        long total = 0;
        for (String shard : new java.util.TreeSet<>(shardOfTensor.values())) {
            try (SafeTensors st = SafeTensors.open(dir.resolve(shard))) {
                for (SafeTensors.Entry e : st.entries().values()) {
                    if (shardOfTensor.containsKey(e.name())) total += e.end() - e.begin();
                }
            }
        }
        JsonObject metadata = new JsonObject();
        metadata.addProperty("total_size", total);
        JsonObject index = new JsonObject();
        index.add("metadata", metadata);
        index.add("weight_map", map);
        FileWrites.writeString(dir.resolve("model.safetensors.index.json"), new GsonBuilder().setPrettyPrinting().create().toJson(index) + "\n");
    }

    static JsonObject configJson(ModelConfig c, DType dtype) {
        JsonObject o = new JsonObject();
        if (c.family() == Family.GPT2) {
            o.addProperty("model_type", "gpt2");
            o.add("architectures", JsonParser.parseString("[\"GPT2LMHeadModel\"]"));
            o.addProperty("vocab_size", c.vocabSize());
            o.addProperty("n_positions", c.maxPositions());
            o.addProperty("n_ctx", c.maxPositions());
            o.addProperty("n_embd", c.hidden());
            o.addProperty("n_layer", c.layers());
            o.addProperty("n_head", c.heads());
            o.addProperty("n_inner", c.intermediate());
            o.addProperty("layer_norm_epsilon", c.normEps());
            o.addProperty("activation_function", "gelu_new");
            o.addProperty("tie_word_embeddings", true);
        } else {
            String type = c.modelType();
            o.addProperty("model_type", type);
            String arch = switch (type) {
                case "mistral" -> "MistralForCausalLM";
                case "qwen2" -> "Qwen2ForCausalLM";
                default -> "LlamaForCausalLM";
            };
            o.add("architectures", JsonParser.parseString("[\"" + arch + "\"]"));
            o.addProperty("vocab_size", c.vocabSize());
            o.addProperty("hidden_size", c.hidden());
            o.addProperty("intermediate_size", c.intermediate());
            o.addProperty("num_hidden_layers", c.layers());
            o.addProperty("num_attention_heads", c.heads());
            o.addProperty("num_key_value_heads", c.kvHeads());
            o.addProperty("head_dim", c.headDim());
            o.addProperty("max_position_embeddings", c.maxPositions());
            o.addProperty("rms_norm_eps", c.normEps());
            ModelConfig.Options opt = c.options();
            if (opt.ropeSpelling() == ModelConfig.RopeSpelling.ROPE_PARAMETERS) {
                JsonObject r = rope(opt.rope(), "rope_type");
                r.addProperty("rope_theta", c.ropeTheta());
                o.add("rope_parameters", r);
            } else {
                o.addProperty("rope_theta", c.ropeTheta());
                if (opt.ropeSpelling() != ModelConfig.RopeSpelling.NONE) {
                    o.add("rope_scaling", rope(opt.rope(), opt.ropeSpelling() == ModelConfig.RopeSpelling.ROPE_SCALING_TYPE ? "type" : "rope_type"));
                }
            }
            o.addProperty("hidden_act", "silu");
            switch (type) {
                case "mistral" -> o.add("sliding_window", window(opt.slidingWindow()));
                case "qwen2" -> {
                    o.addProperty("use_sliding_window", opt.slidingWindow() > 0);
                    o.add("sliding_window", window(opt.slidingWindow()));
                    o.addProperty("max_window_layers", opt.windowFromLayer());
                }
                default -> {
                    o.addProperty("attention_bias", opt.attentionBias());
                    o.addProperty("mlp_bias", opt.mlpBias());
                }
            }
            o.addProperty("tie_word_embeddings", c.tiedEmbeddings());
        }
        o.addProperty("torch_dtype", dtype.torch());
        return o;
    }

    private static JsonElement window(int w) {
        return w > 0 ? new JsonPrimitive(w) : JsonNull.INSTANCE;
    }

    /** The rotary scaling as transformers reads it, with only the keys the config gave (0 is "not given"). */
    private static JsonObject rope(ModelConfig.Rope r, String typeKey) {
        JsonObject o = new JsonObject();
        o.addProperty(typeKey, r.type());
        if (r.type().equals("default")) return o;
        o.addProperty("factor", r.factor());
        if (r.type().equals("llama3")) {
            o.addProperty("low_freq_factor", r.lowFreqFactor());
            o.addProperty("high_freq_factor", r.highFreqFactor());
        }
        if (r.originalMaxPositions() > 0) o.addProperty("original_max_position_embeddings", r.originalMaxPositions());
        if (r.attentionFactor() > 0) o.addProperty("attention_factor", r.attentionFactor());
        if (r.betaFast() != 0) o.addProperty("beta_fast", r.betaFast());
        if (r.betaSlow() != 0) o.addProperty("beta_slow", r.betaSlow());
        if (r.mscale() != 0) o.addProperty("mscale", r.mscale());
        if (r.mscaleAllDim() != 0) o.addProperty("mscale_all_dim", r.mscaleAllDim());
        if (!r.truncate()) o.addProperty("truncate", false);
        return o;
    }

    /** The safetensors files of a directory: one file, or the shards its index lists. */
    static List<Path> weightFiles(Path dir) {
        Path single = dir.resolve("model.safetensors"), index = dir.resolve("model.safetensors.index.json");
        if (Files.isRegularFile(single)) return List.of(single);
        if (!Files.isRegularFile(index)) {
            throw new ModelFileException(dir, "no model.safetensors or model.safetensors.index.json in the directory");
        }
        try {
            JsonObject map = JsonParser.parseString(Files.readString(index)).getAsJsonObject().getAsJsonObject("weight_map");
            if (map == null) throw new ModelFileException(index, "missing 'weight_map'");
            return map.entrySet().stream().map(e -> dir.resolve(e.getValue().getAsString())).distinct().toList();
        } catch (IOException | RuntimeException e) {
            if (e instanceof ModelFileException m) throw m;
            throw new ModelFileException(index, "malformed index: " + e.getMessage(), e);
        }
    }

    /**
     * The dtype a model directory's weights are stored in, as Relay can hold them: what config.json's {@code dtype}
     * (transformers 5) or {@code torch_dtype} names, or where it names neither (or "auto") what the safetensors
     * headers say — bfloat16 when every tensor is BF16, else float32. bfloat16 is {@link DType#BF16} and float32
     * {@link DType#F32}; float16 is F32 too, since Relay has no float16 (its narrow range needs loss scaling) and
     * float32 holds every float16 value exactly.
     */
    public static DType storedDtype(Path dir) {
        Path config = dir.resolve("config.json");
        if (Files.isRegularFile(config)) {
            JsonObject o;
            try {
                o = JsonParser.parseString(Files.readString(config)).getAsJsonObject();
            } catch (IOException | RuntimeException e) {
                throw new ModelFileException(config, "malformed config.json: " + e.getMessage(), e);
            }
            for (String key : List.of("dtype", "torch_dtype")) {
                JsonElement v = o.get(key);
                if (v == null || !v.isJsonPrimitive()) continue;
                String name = v.getAsString().toLowerCase(java.util.Locale.ROOT);
                if (name.startsWith("torch.")) name = name.substring("torch.".length());
                switch (name) {
                    case "bfloat16":
                        return DType.BF16;
                    case "float32", "float", "float16", "half":
                        return DType.F32;
                    default:
                        // "auto" or a dtype Relay does not store: the files say.
                }
            }
        }
        boolean any = false;
        for (Path f : weightFiles(dir)) {
            try (SafeTensors st = SafeTensors.open(f)) {
                for (SafeTensors.Entry e : st.entries().values()) {
                    if (!e.dtype().equals(DType.BF16.safetensors())) return DType.F32;
                    any = true;
                }
            }
        }
        return any ? DType.BF16 : DType.F32;
    }

    /** Loads a directory onto a device in float32: every parameter must be present with the shape its config implies, and nothing else. */
    public static Model load(Path dir, Device device) {
        return load(dir, device, Precision.F32);
    }

    /**
     * The same, the model held in {@code precision}: a bfloat16 file's values keep their bits in bfloat16 weights, a
     * float32 file's are rounded to nearest (ties to even).
     */
    public static Model load(Path dir, Device device, Precision precision) {
        try (Weights w = Weights.open(dir)) {
            Model model = Model.initialize(w.config(), device, 0, precision);
            try {
                w.read(model.parameters());
                w.checkAllRead();
                return model;
            } catch (RuntimeException e) {
                model.close();
                throw e;
            }
        }
    }

    /**
     * A model directory open for reading: its config and its tensors by name. A pipeline stage reads only its
     * own parameters from it; a whole model reads them all and then checks that nothing was left over.
     */
    public static final class Weights implements AutoCloseable {
        private final Path dir;
        private final ModelConfig config;
        private final List<SafeTensors> files = new ArrayList<>();
        private final Map<String, SafeTensors> byName = new LinkedHashMap<>();
        private final java.util.Set<String> read = new java.util.HashSet<>();

        private Weights(Path dir) {
            this.dir = dir;
            this.config = ModelConfig.read(dir.resolve("config.json"));
        }

        public static Weights open(Path dir) {
            if (!Files.isDirectory(dir)) throw new ModelFileException(dir, "no such model directory");
            Weights w = new Weights(dir);
            try {
                for (Path f : weightFiles(dir)) {
                    SafeTensors st = SafeTensors.open(f);
                    w.files.add(st);
                    for (String n : st.entries().keySet()) w.byName.put(n, st);
                }
                return w;
            } catch (RuntimeException e) {
                w.close();
                throw e;
            }
        }

        public ModelConfig config() {
            return config;
        }

        /**
         * Sets each parameter from its stored tensor, which must be there, of the shape the config implies, and finite;
         * stored as the parameter's dtype (a BF16 tensor into a bfloat16 parameter bit for bit: widening it to float32 is
         * exact and rounding it back changes nothing).
         */
        public void read(List<Parameter> parameters) {
            for (Parameter p : parameters) {
                String stored = storedName(config, p.name(), byName);
                if (stored == null) {
                    throw new ModelFileException(dir, "tensor '" + p.name() + "' is missing (a " + config.family().modelType()
                            + " model of this config.json needs it)");
                }
                SafeTensors st = byName.get(stored);
                int[] want = p.value().shape();
                int[] expected = isConv1D(config, p.name()) ? new int[] {want[1], want[0]} : want;
                if (!Arrays.equals(expected, st.entries().get(stored).shape())) {
                    throw new ModelFileException(st.file(), "tensor '" + stored + "' has shape "
                            + Arrays.toString(st.entries().get(stored).shape()) + " but config.json implies " + Arrays.toString(expected));
                }
                float[] v = st.read(stored);
                for (int i = 0; i < v.length; i++) {
                    if (!Float.isFinite(v[i])) {
                        throw new ModelFileException(st.file(), "tensor '" + stored + "' holds " + v[i] + " at index " + i
                                + ": the weights are not finite numbers (a diverged or damaged model)");
                    }
                }
                p.value().copyFrom(isConv1D(config, p.name()) ? transpose(v, expected[0], expected[1]) : v);
                read.add(stored);
            }
        }

        /** After a whole model was read: a stored tensor that is not one of its parameters is an error. */
        public void checkAllRead() {
            List<String> unused = byName.keySet().stream().filter(n -> !read.contains(n))
                    .filter(n -> !isBuffer(n) && !(config.tiedEmbeddings() && n.equals("lm_head.weight"))).toList();
            if (!unused.isEmpty()) {
                throw new ModelFileException(dir, "unexpected tensors " + unused + " (not part of a "
                        + config.family().modelType() + " model of this config.json)");
            }
        }

        @Override
        public void close() {
            files.forEach(SafeTensors::close);
        }
    }

    /** The name under which a parameter is stored: as is, or without GPT-2's "transformer." prefix. */
    private static String storedName(ModelConfig cfg, String name, Map<String, SafeTensors> byName) {
        if (byName.containsKey(name)) return name;
        if (cfg.family() == Family.GPT2 && name.startsWith("transformer.")) {
            String bare = name.substring("transformer.".length());
            if (byName.containsKey(bare)) return bare;
        }
        return null;
    }
}
