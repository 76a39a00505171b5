package relay.stages.model;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The shape of a model, read from a Hugging Face config.json: GPT-2, or the LLaMA family (model_type llama,
 * mistral, qwen2) with the options of {@link Options}.
 *
 * <p>Read exactly or refused: every key is either one Relay implements, or metadata known not to change the
 * forward pass, or refused with one line naming the file and the key — a key Relay has never heard of might
 * change the math, and running a different model than the checkpoint's without a word is worse than stopping.
 * Dropout keys are accepted as metadata: Relay trains without dropout (HF's GPT-2 configs carry 0.1 values;
 * the LLaMA family's attention_dropout must be 0).
 *
 * @param hidden          width of the residual stream (n_embd / hidden_size)
 * @param intermediate    MLP width (n_inner or 4·n_embd / intermediate_size)
 * @param maxPositions    longest sequence (n_positions / max_position_embeddings)
 * @param ropeTheta       rotary base (LLaMA only; 0 for GPT-2)
 * @param options         what LLaMA-family configs add: rotary scaling, biases, sliding window
 */
public record ModelConfig(Family family, int vocabSize, int hidden, int layers, int heads, int kvHeads,
                          int headDim, int intermediate, int maxPositions, float normEps, double ropeTheta,
                          boolean tiedEmbeddings, Options options) {

    /** Names of the configs shipped in the jar, usable wherever a model is named. */
    public static final List<String> PRESETS = List.of("gpt2-124m", "gpt2-tiny", "llama-tiny", "llama-train", "llama-1b", "llama-7b",
            "llama-13b", "llama-65b", "llama-70b");

    /** A plain model of the family: no rotary scaling, no biases in a LLaMA block, no sliding window. */
    public ModelConfig(Family family, int vocabSize, int hidden, int layers, int heads, int kvHeads,
                       int headDim, int intermediate, int maxPositions, float normEps, double ropeTheta,
                       boolean tiedEmbeddings) {
        this(family, vocabSize, hidden, layers, heads, kvHeads, headDim, intermediate, maxPositions, normEps, ropeTheta,
                tiedEmbeddings, Options.plain(family));
    }

    public ModelConfig {
        require(vocabSize > 0 && hidden > 0 && layers > 0 && heads > 0 && kvHeads > 0 && headDim > 0
                && intermediate > 0 && maxPositions > 0, "all sizes must be positive: " + this);
        require(heads % kvHeads == 0, heads + " attention heads do not split into " + kvHeads + " kv heads");
        require(family != Family.LLAMA || headDim % 2 == 0, "rotary embedding needs an even head_dim, got " + headDim);
        require(family != Family.GPT2 || heads * headDim == hidden, "n_embd " + hidden + " is not n_head × head size");
        require(options != null, "options are required (Options.plain for none)");
        require(family != Family.GPT2 || options.equals(Options.plain(Family.GPT2)), "GPT-2 takes no LLaMA-family options: " + options);
        require(options.slidingWindow() >= 0 && options.windowFromLayer() >= 0, "a sliding window is a size ≥ 0: " + options);
        String type = options.modelType();
        require(family == Family.GPT2 ? type.equals("gpt2") : List.of("llama", "mistral", "qwen2").contains(type),
                "model_type " + type + " is not of the " + family + " family");
        require(type.equals("llama") || !options.attentionBias() && !options.mlpBias(), "only Llama reads attention_bias and mlp_bias");
        require(options.slidingWindow() == 0 || !type.equals("llama"), "Llama has no sliding window");
        require(options.windowFromLayer() == 0 || type.equals("qwen2"), "only Qwen2 has max_window_layers");
        require(Rope.TYPES.contains(options.rope().type()), "rope type " + options.rope().type() + " is not one of " + Rope.TYPES);
    }

    private static void require(boolean ok, String message) {
        if (!ok) throw new IllegalArgumentException(message);
    }

    /**
     * What a LLaMA-family config.json adds to the shape; {@link #plain} when it adds nothing.
     *
     * @param modelType       model_type, written back as read: gpt2, llama, mistral or qwen2 (Qwen2 has biases on q, k
     *                        and v by architecture, without a key for it)
     * @param rope            the rotary scaling, as transformers reads it
     * @param ropeSpelling    how config.json spelled the rotary settings, so that they are written back the same way
     * @param attentionBias   Llama's attention_bias: biases on q, k, v and o
     * @param mlpBias         Llama's mlp_bias: biases on gate, up and down
     * @param slidingWindow   how many keys a query sees, itself included (query i sees keys j with i − window &lt; j ≤ i);
     *                        0 for all earlier keys
     * @param windowFromLayer the first layer that uses the window: Qwen2's max_window_layers, 0 for Mistral
     */
    public record Options(String modelType, Rope rope, RopeSpelling ropeSpelling, boolean attentionBias, boolean mlpBias,
                          int slidingWindow, int windowFromLayer) {
        public static Options plain(Family family) {
            return new Options(family.modelType(), Rope.NONE, RopeSpelling.NONE, false, false, 0, 0);
        }

        public Options withRope(Rope r, RopeSpelling spelling) {
            return new Options(modelType, r, spelling, attentionBias, mlpBias, slidingWindow, windowFromLayer);
        }

        public Options withBiases(boolean attention, boolean mlp) {
            return new Options(modelType, rope, ropeSpelling, attention, mlp, slidingWindow, windowFromLayer);
        }

        public Options withWindow(int window, int fromLayer) {
            return new Options(modelType, rope, ropeSpelling, attentionBias, mlpBias, window, fromLayer);
        }

        public Options withModelType(String type) {
            return new Options(type, rope, ropeSpelling, attentionBias, mlpBias, slidingWindow, windowFromLayer);
        }
    }

    /**
     * Rotary scaling as transformers reads rope_scaling / rope_parameters ({@link RotaryEmbedding} computes with it).
     * A number the file does not give is 0 here; for beta_fast, beta_slow, mscale and mscale_all_dim transformers
     * treats 0 as absent too (it tests them with Python's {@code or}).
     *
     * @param type                 default, linear, dynamic, llama3 or yarn
     * @param factor               the context extension factor (all but default)
     * @param lowFreqFactor        llama3
     * @param highFreqFactor       llama3
     * @param originalMaxPositions the pretraining context (llama3; yarn, where absent means max_position_embeddings)
     * @param attentionFactor      yarn's cos/sin multiplier when given
     * @param truncate             yarn: round the correction range to whole dimensions (transformers' default)
     */
    public record Rope(String type, double factor, double lowFreqFactor, double highFreqFactor, int originalMaxPositions,
                       double attentionFactor, double betaFast, double betaSlow, double mscale, double mscaleAllDim,
                       boolean truncate) {
        public static final Rope NONE = new Rope("default", 0, 0, 0, 0, 0, 0, 0, 0, 0, true);
        public static final List<String> TYPES = List.of("default", "linear", "dynamic", "llama3", "yarn");

        public static Rope linear(double factor) {
            return new Rope("linear", factor, 0, 0, 0, 0, 0, 0, 0, 0, true);
        }

        public static Rope dynamic(double factor) {
            return new Rope("dynamic", factor, 0, 0, 0, 0, 0, 0, 0, 0, true);
        }

        public static Rope llama3(double factor, double low, double high, int originalMaxPositions) {
            return new Rope("llama3", factor, low, high, originalMaxPositions, 0, 0, 0, 0, 0, true);
        }

        public static Rope yarn(double factor, int originalMaxPositions) {
            return new Rope("yarn", factor, 0, 0, originalMaxPositions, 0, 0, 0, 0, 0, true);
        }
    }

    /**
     * Where config.json keeps the rotary settings: nowhere (plain, rope_theta at the top), transformers 4's rope_scaling
     * with the key "type" or "rope_type", or transformers 5's rope_parameters (which holds rope_theta too).
     */
    public enum RopeSpelling { NONE, ROPE_SCALING_TYPE, ROPE_SCALING_ROPE_TYPE, ROPE_PARAMETERS }

    /** model_type as read (gpt2, llama, mistral, qwen2). */
    public String modelType() {
        return options.modelType();
    }

    /** Biases on the q, k and v projections: Llama's attention_bias, and always in Qwen2. */
    public boolean qkvBias() {
        return options.attentionBias() || "qwen2".equals(options.modelType());
    }

    /** The sliding window of layer {@code layer}, 0 when it attends to every earlier key. */
    public int window(int layer) {
        return layer >= options.windowFromLayer() ? options.slidingWindow() : 0;
    }

    /** A preset by name, or a config.json file / model directory by path. */
    public static ModelConfig named(String nameOrPath) {
        if (PRESETS.contains(nameOrPath)) {
            String resource = "/relay/models/" + nameOrPath + ".json";
            try (InputStream in = ModelConfig.class.getResourceAsStream(resource)) {
                if (in == null) throw new IllegalStateException("preset " + resource + " missing from the jar");
                return parse(new InputStreamReader(in, StandardCharsets.UTF_8), resource);
            } catch (IOException e) {
                throw new IllegalStateException("reading preset " + resource, e);
            }
        }
        Path p = Path.of(nameOrPath);
        if (Files.isDirectory(p)) p = p.resolve("config.json");
        if (!Files.isRegularFile(p)) {
            throw new IllegalArgumentException("no model named '" + nameOrPath + "': not a preset " + PRESETS
                    + " and no config.json at " + p);
        }
        return read(p);
    }

    public static ModelConfig read(Path configJson) {
        try (Reader r = Files.newBufferedReader(configJson, StandardCharsets.UTF_8)) {
            return parse(r, configJson.toString());
        } catch (IOException e) {
            throw new IllegalArgumentException(configJson + ": cannot read: " + e.getMessage(), e);
        }
    }

    /** Keys that never change the forward pass: names, token ids, dtypes, initialization, caching. */
    private static final Set<String> METADATA = Set.of("architectures", "model_type", "torch_dtype", "dtype", "transformers_version",
            "bos_token_id", "eos_token_id", "pad_token_id", "initializer_range", "use_cache", "_name_or_path");

    /** GPT-2's own keys; the dropout ones are metadata here, as Relay trains without dropout. */
    private static final Set<String> GPT2_KEYS = Set.of("vocab_size", "n_positions", "n_ctx", "n_embd", "n_layer", "n_head", "n_inner",
            "layer_norm_epsilon", "activation_function", "tie_word_embeddings", "resid_pdrop", "embd_pdrop", "attn_pdrop",
            "summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels", "summary_first_dropout",
            "task_specific_params", "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn",
            "add_cross_attention", "gradient_checkpointing");

    /** Keys of every LLaMA-family model_type. */
    private static final Set<String> LLAMA_FAMILY_KEYS = Set.of("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps", "rope_theta",
            "rope_scaling", "rope_parameters", "hidden_act", "tie_word_embeddings", "attention_dropout", "partial_rotary_factor");

    /** The further keys of each LLaMA-family model_type. */
    private static final Map<String, Set<String>> OWN_KEYS = Map.of(
            "llama", Set.of("attention_bias", "mlp_bias", "pretraining_tp"),
            "mistral", Set.of("sliding_window"),
            "qwen2", Set.of("use_sliding_window", "sliding_window", "max_window_layers", "layer_types"));

    /** Parses config.json text; every error names {@code source} and the field at fault. */
    public static ModelConfig parse(Reader json, String source) {
        JsonObject o;
        try {
            JsonElement e = JsonParser.parseReader(json);
            if (!e.isJsonObject()) throw new IllegalArgumentException(source + ": config is not a JSON object");
            o = e.getAsJsonObject();
        } catch (JsonParseException e) {
            throw new IllegalArgumentException(source + ": malformed JSON: " + e.getMessage(), e);
        }
        Fields f = new Fields(o, source);
        String type = o.has("model_type") ? f.string("model_type") : (o.has("n_embd") ? "gpt2" : "llama");
        if (type.equals("gpt2")) return gpt2(f);
        if (!OWN_KEYS.containsKey(type)) {
            throw new IllegalArgumentException(source + ": model_type '" + type + "' is not supported (gpt2, llama, mistral, qwen2)");
        }
        return llamaFamily(f, type);
    }

    private static ModelConfig gpt2(Fields f) {
        JsonObject o = f.o();
        f.onlyKnownKeys(GPT2_KEYS);
        String act = f.optString("activation_function", "gelu_new");
        // Relay's GELU is the tanh form, which both names mean in transformers.
        f.refuseUnless(act.equals("gelu_new") || act.equals("gelu_pytorch_tanh"), "activation_function", "'" + act + "'",
                "Relay's GPT-2 uses the tanh GELU: gelu_new or gelu_pytorch_tanh");
        f.refuseUnless(f.optBoolean("scale_attn_weights", true), "scale_attn_weights", "false",
                "Relay scales attention scores by 1/√head_dim");
        f.refuseUnless(!f.optBoolean("scale_attn_by_inverse_layer_idx", false), "scale_attn_by_inverse_layer_idx", "true",
                "Relay does not scale attention by the layer index");
        f.refuseUnless(!f.optBoolean("add_cross_attention", false), "add_cross_attention", "true", "Relay's GPT-2 is decoder-only");
        f.optBoolean("reorder_and_upcast_attn", false);  // a precision choice of transformers' fp16 path: same math
        int c = f.size("n_embd"), h = f.size("n_head");
        f.divides("n_head", h, "n_embd", c);
        return new ModelConfig(Family.GPT2, f.size("vocab_size"), c, f.size("n_layer"), h, h,
                c / h, o.has("n_inner") && !o.get("n_inner").isJsonNull() ? f.size("n_inner") : 4 * c, f.size("n_positions"),
                (float) f.positive("layer_norm_epsilon", 1e-5), 0, f.optBoolean("tie_word_embeddings", true));
    }

    private static ModelConfig llamaFamily(Fields f, String type) {
        JsonObject o = f.o();
        Set<String> known = new HashSet<>(LLAMA_FAMILY_KEYS);
        known.addAll(OWN_KEYS.get(type));
        f.onlyKnownKeys(known);
        String act = f.optString("hidden_act", "silu");
        f.refuseUnless(act.equals("silu"), "hidden_act", "'" + act + "'", "the LLaMA family's MLP is SwiGLU: silu");
        double dropout = f.optNumber("attention_dropout", 0);
        f.refuseUnless(dropout == 0, "attention_dropout", String.valueOf(dropout), "Relay trains without dropout");
        double partial = f.optNumber("partial_rotary_factor", 1);
        f.refuseUnless(partial == 1, "partial_rotary_factor", String.valueOf(partial), "Relay rotates the whole head");
        f.optNumber("pretraining_tp", 1);  // transformers no longer splits the projections by it; the math is the same

        int c = f.size("hidden_size"), h = f.size("num_attention_heads");
        int kv = o.has("num_key_value_heads") && !o.get("num_key_value_heads").isJsonNull() ? f.size("num_key_value_heads") : h;
        f.divides("num_key_value_heads", kv, "num_attention_heads", h);
        int headDim;
        if (o.has("head_dim") && !o.get("head_dim").isJsonNull()) {
            headDim = f.size("head_dim");
        } else {
            f.divides("num_attention_heads", h, "hidden_size", c);
            headDim = c / h;
        }
        if (headDim % 2 != 0) {
            throw new IllegalArgumentException(f.source() + ": head_dim " + headDim + " (hidden_size / num_attention_heads unless "
                    + "given) must be even for the rotary embedding");
        }
        int layers = f.size("num_hidden_layers");
        Options options = new Options(type, Rope.NONE, RopeSpelling.NONE, f.optBoolean("attention_bias", false),
                f.optBoolean("mlp_bias", false), 0, 0);
        if (type.equals("mistral")) {
            options = options.withWindow(f.optSize("sliding_window", 0), 0);
        } else if (type.equals("qwen2")) {
            // transformers' Qwen2: layers from max_window_layers on use the window, when use_sliding_window is true.
            boolean use = f.optBoolean("use_sliding_window", false);
            int fromLayer = f.optWhole("max_window_layers", 0);
            int window = use ? f.optSize("sliding_window", 0) : 0;
            options = options.withWindow(window, fromLayer);
            if (o.has("layer_types") && !o.get("layer_types").isJsonNull()) f.layerTypes(layers, window, fromLayer);
        }
        double theta = f.positive("rope_theta", 10000.0);
        RopeRead rope = f.rope(theta, headDim);
        if (rope != null) options = options.withRope(rope.rope(), rope.spelling());
        return new ModelConfig(Family.LLAMA, f.size("vocab_size"), c, layers, h, kv, headDim,
                f.size("intermediate_size"), f.size("max_position_embeddings"), (float) f.positive("rms_norm_eps", 1e-6),
                rope != null ? rope.theta() : theta, f.optBoolean("tie_word_embeddings", false), options);
    }

    private record RopeRead(Rope rope, RopeSpelling spelling, double theta) {}

    /** Parameters of one block. */
    public long blockParameters() {
        long c = hidden, q = (long) heads * headDim, kv = (long) kvHeads * headDim, i = intermediate;
        return switch (family) {
            case GPT2 -> c * 3 * c + 3 * c + c * c + c + 2 * c * i + i + c + 4 * c;
            case LLAMA -> c * q + 2 * c * kv + q * c + 3 * c * i + 2 * c + (qkvBias() ? q + 2 * kv : 0)
                    + (options.attentionBias() ? c : 0) + (options.mlpBias() ? 2 * i + c : 0);
        };
    }

    /** Parameters of the whole model, the tied matrix counted once. */
    public long parameters() {
        return embeddingParameters() + layers * blockParameters() + headParameters();
    }

    /** The embedding's parameters: its token table, and GPT-2's position table. */
    public long embeddingParameters() {
        return (long) vocabSize * hidden + (family == Family.GPT2 ? (long) maxPositions * hidden : 0);
    }

    /** The head's own parameters: the final norm, and the projection to the vocabulary unless it is the tied token table. */
    public long headParameters() {
        long finalNorm = family == Family.GPT2 ? 2L * hidden : hidden;
        return finalNorm + (tiedEmbeddings ? 0 : (long) vocabSize * hidden);
    }

    /** Reads typed fields and names the file and field in every error; {@code prefix} names a nested object's fields. */
    private record Fields(JsonObject o, String source, String prefix) {
        Fields(JsonObject o, String source) {
            this(o, source, "");
        }

        boolean present(String name) {
            return o.has(name) && !o.get(name).isJsonNull();
        }

        JsonElement field(String name) {
            JsonElement e = o.get(name);
            if (e == null || e.isJsonNull()) throw new IllegalArgumentException(source + ": missing field '" + prefix + name + "'");
            return e;
        }

        /** Refuses any key not in {@code known}: one Relay has never heard of might change the math. */
        void onlyKnownKeys(Set<String> known) {
            for (String k : new java.util.TreeSet<>(o.keySet())) {
                if (!known.contains(k) && !(prefix.isEmpty() && METADATA.contains(k))) {
                    throw new IllegalArgumentException(source + ": '" + prefix + k + "' is not a config key Relay knows; refused "
                            + "rather than ignored, as it might change the model's math");
                }
            }
        }

        /** One line naming the file, the key and its value when {@code ok} is false. */
        void refuseUnless(boolean ok, String name, String value, String why) {
            if (!ok) throw new IllegalArgumentException(source + ": '" + prefix + name + "' " + value + " is not supported (" + why + ")");
        }

        /** A size: a positive whole number that fits an int (4.5, "8", 0 and −1 are refused). */
        int size(String name) {
            int v = whole(name);
            if (v <= 0) {
                throw new IllegalArgumentException(source + ": field '" + prefix + name + "' must be a positive whole number, not " + o.get(name));
            }
            return v;
        }

        int whole(String name) {
            JsonElement e = field(name);
            int v;
            try {
                v = e.getAsJsonPrimitive().getAsBigDecimal().intValueExact();
            } catch (RuntimeException ex) {
                throw new IllegalArgumentException(source + ": field '" + prefix + name + "' must be a whole number, not " + e);
            }
            if (v < 0 || !e.getAsJsonPrimitive().isNumber()) {
                throw new IllegalArgumentException(source + ": field '" + prefix + name + "' must be a positive whole number, not " + e);
            }
            return v;
        }

        int optSize(String name, int dflt) {
            return present(name) ? size(name) : dflt;
        }

        int optWhole(String name, int dflt) {
            return present(name) ? whole(name) : dflt;
        }

        /** A finite number, or the default when absent. */
        double optNumber(String name, double dflt) {
            if (!present(name)) return dflt;
            JsonElement e = o.get(name);
            if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber() || !Double.isFinite(e.getAsDouble())) {
                throw new IllegalArgumentException(source + ": field '" + prefix + name + "' must be a finite number, not " + e);
            }
            return e.getAsDouble();
        }

        /** A finite positive number, or the default when absent. */
        double positive(String name, double dflt) {
            if (!present(name)) return dflt;
            double v;
            try {
                v = o.get(name).getAsJsonPrimitive().isNumber() ? o.get(name).getAsDouble() : Double.NaN;
            } catch (RuntimeException ex) {
                v = Double.NaN;
            }
            if (!(v > 0) || Double.isInfinite(v)) {
                throw new IllegalArgumentException(source + ": field '" + prefix + name + "' must be a finite number > 0, not " + o.get(name));
            }
            return v;
        }

        /** A finite positive number that must be there. */
        double positive(String name) {
            field(name);
            return positive(name, 0);
        }

        /** Checks that {@code part} (field {@code partName}) divides {@code whole} (field {@code wholeName}). */
        void divides(String partName, int part, String wholeName, int whole) {
            if (whole % part != 0) {
                throw new IllegalArgumentException(source + ": " + wholeName + " " + whole + " is not divisible by " + partName + " " + part);
            }
        }

        boolean optBoolean(String name, boolean dflt) {
            if (!present(name)) return dflt;
            JsonElement e = o.get(name);
            if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isBoolean()) {
                throw new IllegalArgumentException(source + ": field '" + prefix + name + "' must be true or false, not " + e);
            }
            return e.getAsBoolean();
        }

        String string(String name) {
            JsonElement e = field(name);
            if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) {
                throw new IllegalArgumentException(source + ": field '" + prefix + name + "' must be a string, not " + e);
            }
            return e.getAsString();
        }

        String optString(String name, String dflt) {
            return present(name) ? string(name) : dflt;
        }

        /** Qwen2's layer_types, when given, must say what the window keys say (Relay derives the layers' windows from them). */
        void layerTypes(int layers, int window, int fromLayer) {
            JsonElement e = o.get("layer_types");
            List<String> want = new java.util.ArrayList<>();
            for (int i = 0; i < layers; i++) want.add(window > 0 && i >= fromLayer ? "sliding_attention" : "full_attention");
            List<String> got = new java.util.ArrayList<>();
            if (e.isJsonArray()) {
                for (JsonElement t : e.getAsJsonArray()) got.add(t.isJsonPrimitive() ? t.getAsString() : t.toString());
            }
            refuseUnless(got.equals(want), "layer_types", e.toString().length() > 80 ? e.toString().substring(0, 80) + "…" : e.toString(),
                    "it must match use_sliding_window, sliding_window and max_window_layers: " + want);
        }

        /** The rotary settings: rope_scaling (transformers 4) or rope_parameters (transformers 5), or null for neither. */
        RopeRead rope(double topTheta, int headDim) {
            boolean scaling = present("rope_scaling"), params = present("rope_parameters");
            if (scaling && params) {
                throw new IllegalArgumentException(source + ": both 'rope_scaling' and 'rope_parameters' are given; give one of them");
            }
            if (!scaling && !params) return null;
            String key = scaling ? "rope_scaling" : "rope_parameters";
            if (!o.get(key).isJsonObject()) {
                throw new IllegalArgumentException(source + ": field '" + key + "' must be an object, not " + o.get(key));
            }
            Fields r = new Fields(o.get(key).getAsJsonObject(), source, key + ".");
            String byType = r.present("type") ? r.string("type") : null, byRopeType = r.present("rope_type") ? r.string("rope_type") : null;
            if (byType != null && byRopeType != null && !byType.equals(byRopeType)) {
                throw new IllegalArgumentException(source + ": '" + key + ".type' '" + byType + "' and '" + key + ".rope_type' '"
                        + byRopeType + "' disagree");
            }
            String type = byRopeType != null ? byRopeType : byType != null ? byType : params ? "default" : null;
            if (type == null) throw new IllegalArgumentException(source + ": missing field '" + key + ".rope_type'");
            RopeSpelling spelling = params ? RopeSpelling.ROPE_PARAMETERS
                    : byRopeType != null ? RopeSpelling.ROPE_SCALING_ROPE_TYPE : RopeSpelling.ROPE_SCALING_TYPE;
            r.refuseUnless(Rope.TYPES.contains(type), byRopeType != null ? "rope_type" : "type", "'" + type + "'",
                    "Relay implements " + Rope.TYPES);
            Set<String> known = new HashSet<>(Set.of("type", "rope_type"));
            known.addAll(switch (type) {
                case "linear", "dynamic" -> Set.of("factor");
                case "llama3" -> Set.of("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings");
                case "yarn" -> Set.of("factor", "original_max_position_embeddings", "attention_factor", "beta_fast", "beta_slow",
                        "mscale", "mscale_all_dim", "truncate");
                default -> Set.of();
            });
            double theta = topTheta;
            if (params) {
                known.addAll(Set.of("rope_theta", "partial_rotary_factor"));
                if (r.present("rope_theta")) {
                    theta = r.positive("rope_theta");
                    if (present("rope_theta") && theta != topTheta) {
                        throw new IllegalArgumentException(source + ": 'rope_theta' " + topTheta + " and 'rope_parameters.rope_theta' "
                                + theta + " disagree");
                    }
                }
                double partial = r.optNumber("partial_rotary_factor", 1);
                r.refuseUnless(partial == 1, "partial_rotary_factor", String.valueOf(partial), "Relay rotates the whole head");
            }
            r.onlyKnownKeys(known);
            Rope rope = switch (type) {
                case "linear" -> Rope.linear(r.positive("factor"));
                case "dynamic" -> {
                    // base·(…)^(d/(d−2)) needs d > 2
                    r.refuseUnless(headDim > 2, "rope_type", "'dynamic'", "head_dim " + headDim + " leaves d/(d−2) undefined");
                    yield Rope.dynamic(r.positive("factor"));
                }
                case "llama3" -> {
                    double low = r.positive("low_freq_factor"), high = r.positive("high_freq_factor");
                    r.refuseUnless(high > low, "high_freq_factor", String.valueOf(high), "it must exceed low_freq_factor " + low);
                    yield Rope.llama3(r.positive("factor"), low, high, r.size("original_max_position_embeddings"));
                }
                case "yarn" -> new Rope("yarn", r.positive("factor"), 0, 0, r.optSize("original_max_position_embeddings", 0),
                        r.positive("attention_factor", 0), r.optNumber("beta_fast", 0), r.optNumber("beta_slow", 0),
                        r.optNumber("mscale", 0), r.optNumber("mscale_all_dim", 0), r.optBoolean("truncate", true));
                default -> Rope.NONE;
            };
            return new RopeRead(rope, spelling, theta);
        }
    }
}
