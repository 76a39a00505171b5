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
import java.util.List;

/**
 * The shape of a model, read from a Hugging Face config.json (GPT-2 or LLaMA field names).
 *
 * @param hidden          width of the residual stream (n_embd / hidden_size)
 * @param intermediate    MLP width (n_inner or 4·n_embd / intermediate_size)
 * @param maxPositions    longest sequence (n_positions / max_position_embeddings)
 * @param ropeTheta       rotary base (LLaMA only; 0 for GPT-2)
 */
public record ModelConfig(Family family, int vocabSize, int hidden, int layers, int heads, int kvHeads,
                          int headDim, int intermediate, int maxPositions, float normEps, double ropeTheta,
                          boolean tiedEmbeddings) {

    /** Names of the configs shipped in the jar, usable wherever a model is named. */
    public static final List<String> PRESETS = List.of("gpt2-124m", "gpt2-tiny", "llama-tiny", "llama-train", "llama-1b");

    public ModelConfig {
        require(vocabSize > 0 && hidden > 0 && layers > 0 && heads > 0 && kvHeads > 0 && headDim > 0
                && intermediate > 0 && maxPositions > 0, "all sizes must be positive: " + this);
        require(heads % kvHeads == 0, heads + " attention heads do not split into " + kvHeads + " kv heads");
        require(family != Family.LLAMA || headDim % 2 == 0, "rotary embedding needs an even head_dim, got " + headDim);
        require(family != Family.GPT2 || heads * headDim == hidden, "n_embd " + hidden + " is not n_head × head size");
    }

    private static void require(boolean ok, String message) {
        if (!ok) throw new IllegalArgumentException(message);
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
        try {
            return switch (type) {
                case "gpt2" -> {
                    int c = f.integer("n_embd"), h = f.integer("n_head");
                    yield new ModelConfig(Family.GPT2, f.integer("vocab_size"), c, f.integer("n_layer"), h, h,
                            c / h, f.optInteger("n_inner", 4 * c), f.integer("n_positions"),
                            (float) f.optDouble("layer_norm_epsilon", 1e-5), 0,
                            f.optBoolean("tie_word_embeddings", true));
                }
                case "llama" -> {
                    int c = f.integer("hidden_size"), h = f.integer("num_attention_heads");
                    yield new ModelConfig(Family.LLAMA, f.integer("vocab_size"), c, f.integer("num_hidden_layers"),
                            h, f.optInteger("num_key_value_heads", h), f.optInteger("head_dim", c / h),
                            f.integer("intermediate_size"), f.integer("max_position_embeddings"),
                            (float) f.optDouble("rms_norm_eps", 1e-6), f.optDouble("rope_theta", 10000.0),
                            f.optBoolean("tie_word_embeddings", false));
                }
                default -> throw new IllegalArgumentException("model_type '" + type + "' is not supported (gpt2, llama)");
            };
        } catch (IllegalArgumentException e) {
            throw e.getMessage().startsWith(source) ? e : new IllegalArgumentException(source + ": " + e.getMessage(), e);
        }
    }

    /** Parameters of one block. */
    public long blockParameters() {
        long c = hidden, q = (long) heads * headDim, kv = (long) kvHeads * headDim, i = intermediate;
        return switch (family) {
            case GPT2 -> c * 3 * c + 3 * c + c * c + c + 2 * c * i + i + c + 4 * c;
            case LLAMA -> c * q + 2 * c * kv + q * c + 3 * c * i + 2 * c;
        };
    }

    /** Parameters of the whole model, the tied matrix counted once. */
    public long parameters() {
        long c = hidden, emb = (long) vocabSize * c;
        long positions = family == Family.GPT2 ? (long) maxPositions * c : 0;
        long finalNorm = family == Family.GPT2 ? 2 * c : c;
        return emb + positions + layers * blockParameters() + finalNorm + (tiedEmbeddings ? 0 : emb);
    }

    /** Reads typed fields and names the file and field in every error. */
    private record Fields(JsonObject o, String source) {
        JsonElement field(String name) {
            JsonElement e = o.get(name);
            if (e == null || e.isJsonNull()) throw new IllegalArgumentException(source + ": missing field '" + name + "'");
            return e;
        }

        int integer(String name) {
            JsonElement e = field(name);
            try {
                return e.getAsInt();
            } catch (RuntimeException ex) {
                throw new IllegalArgumentException(source + ": field '" + name + "' is not an integer: " + e);
            }
        }

        int optInteger(String name, int dflt) {
            return o.has(name) && !o.get(name).isJsonNull() ? integer(name) : dflt;
        }

        double optDouble(String name, double dflt) {
            if (!o.has(name) || o.get(name).isJsonNull()) return dflt;
            try {
                return o.get(name).getAsDouble();
            } catch (RuntimeException ex) {
                throw new IllegalArgumentException(source + ": field '" + name + "' is not a number: " + o.get(name));
            }
        }

        boolean optBoolean(String name, boolean dflt) {
            return o.has(name) && !o.get(name).isJsonNull() ? o.get(name).getAsBoolean() : dflt;
        }

        String string(String name) {
            return field(name).getAsString();
        }
    }
}
