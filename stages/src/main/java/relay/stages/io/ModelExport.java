package relay.stages.io;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import relay.stages.layers.Parameter;
import relay.stages.model.Model;
import relay.stages.model.Precision;
import relay.stages.tensor.DType;
import relay.stages.tensor.Device;
import relay.stages.text.SpecialTokens;
import relay.stages.text.Tokenizer;

/**
 * A clean Hugging Face model directory made from a model directory (typically a checkpoint): the weights in the
 * chosen precision, sharded as transformers shards them (one {@code model.safetensors}, or
 * {@code model-0000i-of-0000n.safetensors} with an index giving {@code metadata.total_size}), config.json with its
 * {@code torch_dtype}, the tokenizer's files as the source had them (and a generation_config.json naming its
 * end-of-sequence ids where the source had none) — none of what a run keeps beside them
 * (optimizer state, trainer state, manifest).
 */
public final class ModelExport {
    /** transformers' default {@code max_shard_size} ("5GB"). */
    public static final long SHARD_BYTES = 5_000_000_000L;

    /** The files of a model directory that describe its tokenizer and generation, copied byte for byte. */
    static final String GENERATION_CONFIG = "generation_config.json";

    public static final List<String> TOKENIZER_FILES = List.of("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
            "generation_config.json", "chat_template.jinja");

    /** What was written: the directory, its files, and the bytes of its tensors. */
    public record Result(Path dir, List<String> files, long tensorBytes) {}

    /**
     * What an export of {@code source} writes unless told: the dtype its weights are stored in
     * ({@link HfModelDirectory#storedDtype}), so a bfloat16 run's checkpoint exports as bfloat16 and a float32 one as float32.
     */
    public static DType defaultDtype(Path source) {
        return HfModelDirectory.storedDtype(source);
    }

    private ModelExport() {}

    /**
     * Loads {@code source} (every tensor checked: present, of its shape, finite) and writes it to {@code target}, which
     * must not exist or be empty. The directory is assembled aside and moved into place last, so a failure leaves
     * nothing under its name.
     */
    public static Result export(Path source, Path target, DType dtype, long shardBytes, Device device) throws IOException {
        return export(source, target, dtype, shardBytes, null, device);
    }

    /** The same, with a LoRA run's adapters written beside the merged weights as a PEFT adapter (none: null). */
    public static Result export(Path source, Path target, DType dtype, long shardBytes, PeftAdapter adapter, Device device)
            throws IOException {
        if (Files.isDirectory(target)) {
            try (var entries = Files.list(target)) {
                if (entries.findAny().isPresent()) {
                    throw new IllegalArgumentException(target + ": not empty; export writes a new directory (remove it or choose another)");
                }
            }
            Files.delete(target);
        } else if (Files.exists(target)) {
            throw new IllegalArgumentException(target + ": a file, not a directory to export into");
        }
        Path aside = target.resolveSibling(target.getFileName() + ".export-tmp");
        deleteTree(aside);
        Files.createDirectories(aside);
        try {
            // Held in the dtype written: widening bfloat16 is exact, and rounding at load is the rounding a write would do.
            try (Model model = HfModelDirectory.load(source, device, Precision.of(dtype))) {
                writeWeights(model, aside, dtype, shardBytes);
                if (adapter != null) adapter.write(model.config(), aside, dtype);
            }
            writeConfig(source.resolve("config.json"), aside.resolve("config.json"), dtype);
            for (String f : TOKENIZER_FILES) {
                if (Files.isRegularFile(source.resolve(f))) FileWrites.writeBytes(aside.resolve(f), Files.readAllBytes(source.resolve(f)));
            }
            if (!Files.exists(aside.resolve(GENERATION_CONFIG)) && Files.isRegularFile(source.resolve("tokenizer.json"))) {
                writeGenerationConfig(Tokenizer.ofModel(source).special(), aside.resolve(GENERATION_CONFIG));
            }
            Files.move(aside, target, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException | RuntimeException e) {
            deleteTree(aside);
            throw e;
        }
        try (var files = Files.list(target)) {
            return new Result(target, files.map(f -> f.getFileName().toString()).sorted().toList(), tensorBytes(target));
        }
    }

    /** The model's parameters in shards of at most {@code shardBytes} (one tensor may exceed it alone). */
    private static void writeWeights(Model model, Path dir, DType dtype, long shardBytes) throws IOException {
        List<List<SafeTensors.Tensor32>> shards = new ArrayList<>();
        List<SafeTensors.Tensor32> current = new ArrayList<>();
        long inShard = 0;
        for (Parameter p : model.parameters()) {
            long bytes = p.size() * dtype.bytes();
            if (!current.isEmpty() && inShard + bytes > shardBytes) {
                shards.add(current);
                current = new ArrayList<>();
                inShard = 0;
            }
            current.add(new SafeTensors.Tensor32(p.name(), p.value().shape(), p.value().toArray()));
            inShard += bytes;
        }
        shards.add(current);
        if (shards.size() == 1) {
            HfModelDirectory.writeShard(model.config(), current, dir.resolve("model.safetensors"), dtype);
            return;
        }
        Map<String, String> shardOf = new LinkedHashMap<>();
        for (int i = 0; i < shards.size(); i++) {
            String name = String.format("model-%05d-of-%05d.safetensors", i + 1, shards.size());
            HfModelDirectory.writeShard(model.config(), shards.get(i), dir.resolve(name), dtype);
            for (SafeTensors.Tensor32 t : shards.get(i)) shardOf.put(t.name(), name);
        }
        HfModelDirectory.writeIndex(dir, shardOf);
    }

    /**
     * generation_config.json for a model that came without one, as transformers' save_pretrained derives it: the
     * tokenizer's BOS and end-of-sequence ids (a list when there are several), so generation stops where the model's
     * turns end.
     */
    private static void writeGenerationConfig(SpecialTokens special, Path file) throws IOException {
        JsonObject o = new JsonObject();
        if (special.bos() >= 0) o.addProperty("bos_token_id", special.bos());
        int[] eos = special.eos();
        if (eos.length == 1) {
            o.addProperty("eos_token_id", eos[0]);
        } else if (eos.length > 1) {
            com.google.gson.JsonArray a = new com.google.gson.JsonArray();
            for (int id : eos) a.add(id);
            o.add("eos_token_id", a);
        }
        if (special.pad() >= 0) o.addProperty("pad_token_id", special.pad());
        FileWrites.writeString(file, new GsonBuilder().setPrettyPrinting().create().toJson(o) + "\n");
    }

    /** The source's config.json, every key kept, with the precision the weights are now stored in (under transformers 5's "dtype" where the source used it). */
    private static void writeConfig(Path from, Path to, DType dtype) throws IOException {
        JsonObject o;
        try {
            o = JsonParser.parseString(Files.readString(from, StandardCharsets.UTF_8)).getAsJsonObject();
        } catch (JsonParseException | IllegalStateException e) {
            throw new ModelFileException(from, "malformed config.json: " + e.getMessage(), e);
        }
        o.addProperty(o.has("dtype") ? "dtype" : "torch_dtype", dtype.torch());
        FileWrites.writeString(to, new GsonBuilder().setPrettyPrinting().disableHtmlEscaping().create().toJson(o) + "\n");
    }

    /** The bytes of every tensor in a model directory's weight files. */
    public static long tensorBytes(Path dir) {
        long total = 0;
        for (Path f : HfModelDirectory.weightFiles(dir)) {
            try (SafeTensors st = SafeTensors.open(f)) {
                for (SafeTensors.Entry e : st.entries().values()) total += e.end() - e.begin();
            }
        }
        return total;
    }

    private static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) return;
        try (var files = Files.walk(dir)) {
            for (Path f : files.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(f);
        }
    }
}
