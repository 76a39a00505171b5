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
    public static final List<String> PRESETS = List.of("gpt2-124m", "gpt2-tiny", "llama-tiny", "llama-train", "llama-1b", "llama-7b",
            "llama-13b", "llama-65b", "llama-70b");

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
        return switch (type) {
            case "gpt2" -> {
                int c = f.size("n_embd"), h = f.size("n_head");
                f.divides("n_head", h, "n_embd", c);
                yield new ModelConfig(Family.GPT2, f.size("vocab_size"), c, f.size("n_layer"), h, h,
                        c / h, o.has("n_inner") && !o.get("n_inner").isJsonNull() ? f.size("n_inner") : 4 * c, f.size("n_positions"),
                        (float) f.positive("layer_norm_epsilon", 1e-5), 0, f.optBoolean("tie_word_embeddings", true));
            }
            case "llama" -> {
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
                    throw new IllegalArgumentException(source + ": head_dim " + headDim + " (hidden_size / num_attention_heads unless "
                            + "given) must be even for the rotary embedding");
                }
                yield new ModelConfig(Family.LLAMA, f.size("vocab_size"), c, f.size("num_hidden_layers"), h, kv, headDim,
                        f.size("intermediate_size"), f.size("max_position_embeddings"), (float) f.positive("rms_norm_eps", 1e-6),
                        f.positive("rope_theta", 10000.0), f.optBoolean("tie_word_embeddings", false));
            }
            default -> throw new IllegalArgumentException(source + ": model_type '" + type + "' is not supported (gpt2, llama)");
        };
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

        /** A size: a positive whole number that fits an int (4.5, "8", 0 and −1 are refused). */
        int size(String name) {
            JsonElement e = field(name);
            int v;
            try {
                v = e.getAsJsonPrimitive().getAsBigDecimal().intValueExact();
            } catch (RuntimeException ex) {
                throw new IllegalArgumentException(source + ": field '" + name + "' must be a whole number, not " + e);
            }
            if (v <= 0 || !e.getAsJsonPrimitive().isNumber()) {
                throw new IllegalArgumentException(source + ": field '" + name + "' must be a positive whole number, not " + e);
            }
            return v;
        }

        /** A finite positive number, or the default when absent. */
        double positive(String name, double dflt) {
            if (!o.has(name) || o.get(name).isJsonNull()) return dflt;
            double v;
            try {
                v = o.get(name).getAsJsonPrimitive().isNumber() ? o.get(name).getAsDouble() : Double.NaN;
            } catch (RuntimeException ex) {
                v = Double.NaN;
            }
            if (!(v > 0) || Double.isInfinite(v)) {
                throw new IllegalArgumentException(source + ": field '" + name + "' must be a finite number > 0, not " + o.get(name));
            }
            return v;
        }

        /** Checks that {@code part} (field {@code partName}) divides {@code whole} (field {@code wholeName}). */
        void divides(String partName, int part, String wholeName, int whole) {
            if (whole % part != 0) {
                throw new IllegalArgumentException(source + ": " + wholeName + " " + whole + " is not divisible by " + partName + " " + part);
            }
        }

        boolean optBoolean(String name, boolean dflt) {
            if (!o.has(name) || o.get(name).isJsonNull()) return dflt;
            JsonElement e = o.get(name);
            if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isBoolean()) {
                throw new IllegalArgumentException(source + ": field '" + name + "' must be true or false, not " + e);
            }
            return e.getAsBoolean();
        }

        String string(String name) {
            JsonElement e = field(name);
            if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) {
                throw new IllegalArgumentException(source + ": field '" + name + "' must be a string, not " + e);
            }
            return e.getAsString();
        }
    }
}
