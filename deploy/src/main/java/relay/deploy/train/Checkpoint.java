package relay.deploy.train;

import com.google.gson.Gson;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Consumer;
import relay.stages.data.PackedDataset;
import relay.stages.io.FileWrites;
import relay.stages.io.CheckpointShard;
import relay.stages.io.HfModelDirectory;
import relay.stages.io.ModelFileException;
import relay.stages.io.SafeTensors;
import relay.stages.io.Sha256;
import relay.stages.io.UnwritableFile;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;
import relay.stages.model.Precision;
import relay.stages.tensor.DType;
import relay.stages.text.Tokenizer;

/**
 * A checkpoint, {@code checkpoints/step-N} of a run directory: a Hugging Face model directory with the tokenizer,
 * its weights and optimizer state ("parameter/role" → values) in the files its engine wrote — one
 * {@code model.safetensors} and {@code optimizer.safetensors} for the plain loop, a shard of each per stage for the
 * pipeline ({@link CheckpointShard}), listed by {@code model.safetensors.index.json} — the weights in the run's dtype
 * (config.json's {@code torch_dtype} naming it), optimizer state in float32 — {@code trainer_state.json}
 * (step, data position, optimizer, seed, dtype and activations) and {@code manifest.json}, the SHA-256 of every other file, written last
 * (aside, synced, renamed into place): a checkpoint with a manifest is complete, and one whose files differ from it
 * is corrupt, refused in favour of the one before.
 */
public final class Checkpoint {
    static final String MANIFEST = "manifest.json";
    static final String TRAINER_STATE = "trainer_state.json";

    /** Where a run stood when the checkpoint was written; a checkpoint that names no precision is of a float32 run. */
    record TrainerState(int step, PackedDataset.Position data, String optimizer, long seed, Precision precision) {}

    private Checkpoint() {}

    static Path directory(Path run, int step) {
        return run.resolve("checkpoints").resolve("step-" + step);
    }

    /**
     * Begins checkpoint {@code step} of a run — what an earlier attempt at it left is removed — with the files
     * the coordinator writes: config.json, the tokenizer and the trainer state. Returns its directory, where
     * the engine then writes weights and optimizer state.
     */
    static Path begin(Path run, int step, ModelConfig cfg, Tokenizer tokenizer, PackedDataset.Position data, TrainConfig c)
            throws IOException {
        Path dir = directory(run, step);
        delete(dir);
        HfModelDirectory.writeConfig(cfg, dir, c.precision().weights());
        tokenizer.writeTo(dir);
        Map<String, Object> state = new LinkedHashMap<>();
        state.put("step", step);
        state.put("data_epoch", data.epoch());
        state.put("data_index", data.index());
        state.put("optimizer", c.optimizer().method().key());
        state.put("lisa_gamma", c.optimizer().lisa().gamma());
        state.put("lisa_period", c.optimizer().lisa().period());
        state.put("seed", c.run().seed());
        state.put("dtype", c.precision().weights().key());
        state.put("activations", c.precision().activations().key());
        if (c.optimizer().method() == relay.optimizers.Method.LORA) {
            // What an adapter export needs beside the adapters themselves (which travel in the optimizer state).
            state.put("lora_rank", c.optimizer().lowRank().rank());
            state.put("lora_alpha", c.optimizer().lowRank().loraAlpha());
            state.put("base_model", c.model().name());
        }
        FileWrites.writeString(dir.resolve(TRAINER_STATE), new Gson().toJson(state));
        return dir;
    }

    /**
     * Completes a checkpoint whose engine files are written ({@code written}, with their digests): the index of
     * the model's shards where there are several, then the manifest, last.
     */
    static void seal(Path dir, int step, List<CheckpointShard.File> written) throws IOException {
        Map<String, String> sums = new TreeMap<>();
        Map<String, String> shardOfTensor = new LinkedHashMap<>();
        for (CheckpointShard.File f : written) {
            if (!Files.isRegularFile(dir.resolve(f.name()))) {
                throw new IOException(dir.resolve(f.name()) + " was written by its stage but is not here: on several machines the run "
                        + "directory must be on a file system they share (the same path on every node)");
            }
            sums.put(f.name(), f.sha256());
            f.tensors().forEach(t -> shardOfTensor.put(t, f.name()));
        }
        if (!sums.containsKey("model.safetensors")) HfModelDirectory.writeIndex(dir, shardOfTensor);
        try (var files = Files.list(dir)) {
            for (Path f : files.toList()) {
                String name = f.getFileName().toString();
                if (!sums.containsKey(name) && !name.endsWith(".tmp")) sums.put(name, Sha256.of(f));
            }
        }
        Map<String, Object> manifest = new LinkedHashMap<>();
        manifest.put("step", step);
        manifest.put("sha256", sums);
        FileWrites.writeString(dir.resolve(MANIFEST), new Gson().toJson(manifest));
    }

    /** About what a checkpoint's weights and optimizer state take, from a step's memory by category. */
    static long bytes(Map<Category, Long> memory) {
        return memory.getOrDefault(Category.PARAMETERS, 0L) + memory.getOrDefault(Category.OPTIMIZER_STATE, 0L);
    }

    /**
     * Refuses to begin checkpoint {@code step} where the disk has less room than its weights and optimizer state
     * ({@code bytes}) and a mebibyte for the rest: told before a write fails half-way.
     */
    static void checkRoom(Path run, int step, long bytes) throws IOException {
        long need = bytes + (1 << 20), free = FileWrites.free(run);
        if (free < need) {
            throw new UnwritableFile(String.format(java.util.Locale.ROOT, "cannot write checkpoint %s: it needs %.1f MiB and the disk "
                    + "has %.1f MiB free", directory(run, step), need / 1048576.0, free / 1048576.0));
        }
    }

    /** Deletes the checkpoints a failure left incomplete (no manifest): their files would only hold the disk. */
    static void discardIncomplete(Path run) throws IOException {
        Path checkpoints = run.resolve("checkpoints");
        if (!Files.isDirectory(checkpoints)) return;
        try (var dirs = Files.list(checkpoints)) {
            for (Path d : dirs.toList()) {
                if (d.getFileName().toString().matches("step-\\d+") && !Files.isRegularFile(d.resolve(MANIFEST))) delete(d);
            }
        }
    }

    /** Deletes a checkpoint directory, its manifest first: a deletion cut short leaves an incomplete checkpoint, never a corrupt one. */
    private static void delete(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) return;
        Files.deleteIfExists(dir.resolve(MANIFEST));
        try (var files = Files.walk(dir)) {
            for (Path f : files.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(f);
        }
    }

    /**
     * Where a run resumed from this checkpoint begins, once the checkpoint is found whole and of a run with
     * these settings, with steps left to do.
     */
    static RunInputs.Start resumable(Path checkpoint, TrainConfig c) {
        verify(checkpoint);
        TrainerState state = trainerState(checkpoint);
        Path f = checkpoint.resolve(TRAINER_STATE);
        String method = c.optimizer().method().key();
        if (!state.optimizer().equals(method) || state.seed() != c.run().seed()) {
            throw new ModelFileException(f, "written by a run with optimizer " + state.optimizer() + " and seed " + state.seed()
                    + ", not " + method + " and " + c.run().seed() + "; resume with the run's own settings");
        }
        if (!state.precision().equals(c.precision())) {
            // Refused rather than adopted: the weights would be read into another dtype and the run would not go on as it was.
            throw new ModelFileException(f, "written by a run with dtype " + state.precision().weights().key() + " and activations "
                    + state.precision().activations().key() + ", not " + c.precision().weights().key() + " and "
                    + c.precision().activations().key() + "; resume with dtype=" + state.precision().weights().key() + " activations="
                    + state.precision().activations().key());
        }
        if (state.step() >= c.run().steps()) {
            throw new IllegalArgumentException(checkpoint + " is at step " + state.step() + " and the run has " + c.run().steps()
                    + " steps: raise steps (e.g. steps=" + (state.step() + c.run().steps()) + ") to train on");
        }
        return new RunInputs.Start(checkpoint, state.step(), state.data());
    }

    /** A run directory's newest complete checkpoint (one with a manifest), not checked against it; null when it has none. */
    static Path newestComplete(Path run) {
        Path checkpoints = run.resolve("checkpoints");
        if (!Files.isDirectory(checkpoints)) return null;
        try {
            List<Path> complete = complete(checkpoints);
            return complete.isEmpty() ? null : complete.get(complete.size() - 1);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** Deletes the run's complete checkpoints but the newest {@code keep} (0 keeps them all). */
    static void prune(Path run, int keep) throws IOException {
        if (keep == 0) return;
        List<Path> complete = complete(run.resolve("checkpoints"));
        for (Path old : complete.subList(0, Math.max(0, complete.size() - keep))) delete(old);
    }

    /**
     * Sets aside the run's complete checkpoints after {@code step}, renamed {@code step-N.superseded-<time>}, which no
     * resume, restart or pruning takes: a run going on from an older checkpoint (one the user chose, or the newest
     * intact one when newer ones are damaged) makes a new history, whose restarts and keep-checkpoints must not take
     * the old one's checkpoints for its own. Nothing is deleted. Returns the new names.
     */
    static List<String> setAsideAfter(Path run, int step) throws IOException {
        Path checkpoints = run.resolve("checkpoints");
        if (!Files.isDirectory(checkpoints)) return List.of();
        String time = java.time.LocalDateTime.now().format(java.time.format.DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss"));
        List<String> aside = new java.util.ArrayList<>();
        for (Path cp : complete(checkpoints)) {
            if (stepOf(cp) <= step) continue;
            Path to = checkpoints.resolve(cp.getFileName() + ".superseded-" + time);
            Files.move(cp, to, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            aside.add(to.getFileName().toString());
        }
        return aside;
    }

    private static int stepOf(Path checkpoint) {
        return Integer.parseInt(checkpoint.getFileName().toString().substring("step-".length()));
    }

    /** A run's complete checkpoints (those with a manifest), oldest first. */
    private static List<Path> complete(Path checkpoints) throws IOException {
        try (var dirs = Files.list(checkpoints)) {
            return dirs.filter(d -> d.getFileName().toString().matches("step-\\d+"))
                    .filter(d -> Files.isRegularFile(d.resolve(MANIFEST)))
                    .sorted(Comparator.comparingInt(Checkpoint::stepOf))
                    .toList();
        }
    }

    /**
     * The checkpoint to resume from {@code path}: a checkpoint directory itself, or a run directory's newest
     * intact checkpoint ({@link #newestIntact}, refusals told on standard error). A missing path, or a run
     * without a complete checkpoint, is an error saying so.
     */
    public static Path locate(Path path) {
        return locate(path, System.err::println);
    }

    /** The same, each refused checkpoint told to {@code refused}. */
    public static Path locate(Path path, Consumer<String> refused) {
        if (!Files.isDirectory(path)) throw new IllegalArgumentException(path + ": no such run or checkpoint directory");
        if (Files.isRegularFile(path.resolve(TRAINER_STATE))) return path;
        Path checkpoints = path.resolve("checkpoints");
        if (!Files.isDirectory(checkpoints)) {
            throw new IllegalArgumentException(path + ": neither a run directory (no checkpoints/) nor a checkpoint (no " + TRAINER_STATE + ")");
        }
        try {
            List<Path> complete = complete(checkpoints);
            if (complete.isEmpty()) throw new IllegalArgumentException(checkpoints + ": no complete checkpoint (one with a " + MANIFEST + ")");
            return newestIntact(complete, refused);
        } catch (IOException e) {
            throw new IllegalArgumentException(checkpoints + ": " + e.getMessage(), e);
        }
    }

    /**
     * The newest of these complete checkpoints whose files match its manifest. Each newer one that does not —
     * a shard missing or changed — is refused, told to {@code refused} with the file and the reason, and passed
     * over; when none is intact the oldest one's error stands.
     */
    private static Path newestIntact(List<Path> complete, Consumer<String> refused) {
        for (int i = complete.size() - 1; ; i--) {
            try {
                verify(complete.get(i));
                return complete.get(i);
            } catch (ModelFileException e) {
                if (i == 0) throw e;
                refused.accept("checkpoint " + complete.get(i) + " refused (" + e.getMessage() + "); using "
                        + complete.get(i - 1).getFileName() + ", the one before");
            }
        }
    }

    /** Whether a run's newest intact checkpoint is at or past {@code steps}: the run has nothing left to do. */
    public static boolean finished(Path run, int steps) {
        return trainerState(locate(run, refused -> { })).step() >= steps;
    }

    /** Whether a run directory holds a complete checkpoint to resume from. */
    public static boolean any(Path run) {
        try {
            return Files.isDirectory(run.resolve("checkpoints")) && !complete(run.resolve("checkpoints")).isEmpty();
        } catch (IOException e) {
            throw new IllegalArgumentException(run + ": " + e.getMessage(), e);
        }
    }

    /**
     * The model directory {@code path} names: itself when it holds a config.json, else — a run directory —
     * its newest complete checkpoint, so {@code relay generate --model runs/<run>} reads the latest weights.
     * A path that is neither is an error saying what it is. A directory with a manifest (a checkpoint) is
     * checked against it wherever it is read: a changed shard is refused, not trained or evaluated on.
     */
    public static Path modelDirectory(Path path) {
        if (!Files.exists(path)) throw new ModelFileException(path, "no such model directory");
        if (!Files.isDirectory(path)) throw new ModelFileException(path, "a file, not a model directory");
        if (Files.isRegularFile(path.resolve("config.json"))) {
            if (Files.isRegularFile(path.resolve(MANIFEST))) verify(path);
            return path;
        }
        if (Files.isDirectory(path.resolve("checkpoints"))) return locate(path);
        throw new ModelFileException(path, "neither a model directory (no config.json) nor a run directory (no checkpoints/)");
    }

    /** The run directory a checkpoint belongs to. */
    public static Path run(Path checkpoint) {
        return checkpoint.toAbsolutePath().normalize().getParent().getParent();
    }

    /** Checks every file against the manifest: a missing manifest, a missing file or a changed one is an error naming it. */
    static void verify(Path dir) {
        Path manifest = dir.resolve(MANIFEST);
        if (!Files.isRegularFile(manifest)) {
            throw new ModelFileException(manifest, "missing: the checkpoint was not completely written");
        }
        JsonObject sums;
        try {
            sums = JsonParser.parseString(Files.readString(manifest)).getAsJsonObject().getAsJsonObject("sha256");
        } catch (IOException | JsonParseException | IllegalStateException | NullPointerException e) {
            throw new ModelFileException(manifest, "not a checkpoint manifest: " + e.getMessage(), e);
        }
        for (String name : sums.keySet()) {
            Path f = dir.resolve(name);
            if (!Files.isRegularFile(f)) throw new ModelFileException(f, "missing, though the checkpoint's manifest lists it");
            try {
                if (!Sha256.of(f).equals(sums.get(name).getAsString())) {
                    throw new ModelFileException(f, "corrupt: its SHA-256 differs from the one in " + MANIFEST);
                }
            } catch (IOException e) {
                throw new ModelFileException(f, "unreadable: " + e.getMessage(), e);
            }
        }
    }

    static TrainerState trainerState(Path dir) {
        Path f = dir.resolve(TRAINER_STATE);
        try {
            JsonObject o = JsonParser.parseString(Files.readString(f)).getAsJsonObject();
            return new TrainerState(o.get("step").getAsInt(),
                    new PackedDataset.Position(o.get("data_epoch").getAsInt(), o.get("data_index").getAsInt()),
                    o.get("optimizer").getAsString(), o.get("seed").getAsLong(),
                    new Precision(dtype(o, "dtype"), o.has("activations") ? dtype(o, "activations") : dtype(o, "dtype")));
        } catch (IOException | RuntimeException e) {
            throw new ModelFileException(f, "not a trainer state (step, data_epoch, data_index, optimizer, seed, dtype): " + e.getMessage(), e);
        }
    }

    /** A dtype the trainer state records; float32 where it records none (a checkpoint from before bfloat16). */
    private static DType dtype(JsonObject state, String key) {
        return state.has(key) ? DType.parse(state.get(key).getAsString()) : DType.F32;
    }

    /**
     * A LoRA run's adapters in a checkpoint (its optimizer state's "…lora_A.weight/value" and "…lora_B.weight/value",
     * flat) with their rank, alpha and base model; a checkpoint of another method is refused naming its method.
     */
    public static relay.stages.io.PeftAdapter loraAdapter(Path checkpoint) {
        Path f = checkpoint.resolve(TRAINER_STATE);
        if (!Files.isRegularFile(f)) throw new ModelFileException(f, "missing: an adapter is exported from a LoRA run's checkpoint");
        JsonObject o;
        try {
            o = JsonParser.parseString(Files.readString(f)).getAsJsonObject();
        } catch (IOException | RuntimeException e) {
            throw new ModelFileException(f, "not a trainer state: " + e.getMessage(), e);
        }
        String method = o.has("optimizer") ? o.get("optimizer").getAsString() : "?";
        if (!method.equals(relay.optimizers.Method.LORA.key())) {
            throw new IllegalArgumentException(checkpoint + " is of a " + method + " run: only a LoRA run has an adapter to export");
        }
        if (!o.has("lora_rank") || !o.has("lora_alpha")) {
            throw new ModelFileException(f, "has no lora_rank and lora_alpha (written by an older Relay): export the merged weights only");
        }
        Map<String, float[]> adapters = new TreeMap<>();
        optimizerState(checkpoint).forEach((name, v) -> {
            if (name.endsWith(".lora_A.weight/value") || name.endsWith(".lora_B.weight/value")) {
                adapters.put(name.substring(0, name.length() - "/value".length()), v);
            }
        });
        return new relay.stages.io.PeftAdapter(o.get("lora_rank").getAsInt(), o.get("lora_alpha").getAsFloat(),
                o.has("base_model") ? o.get("base_model").getAsString() : null, adapters);
    }

    /** The optimizer state of every file that holds some: the plain loop's one, or each stage's. */
    static Map<String, float[]> optimizerState(Path dir) {
        return tensors(dir, "optimizer");
    }

    /** Every tensor of the checkpoint's files of one kind ("model" or "optimizer"), by name. */
    private static Map<String, float[]> tensors(Path dir, String kind) {
        Map<String, float[]> values = new LinkedHashMap<>();
        try {
            for (String name : stateFiles(dir)) {
                if (!name.startsWith(kind)) continue;
                try (SafeTensors st = SafeTensors.open(dir.resolve(name))) {
                    for (String tensor : st.entries().keySet()) values.put(tensor, st.read(tensor));
                }
            }
        } catch (IOException e) {
            throw new ModelFileException(dir, "unreadable: " + e.getMessage(), e);
        }
        return values;
    }

    /** The names of the files that hold a checkpoint's weights and optimizer state (model*.safetensors, optimizer*.safetensors), sorted. */
    public static List<String> stateFiles(Path checkpoint) throws IOException {
        try (var files = Files.list(checkpoint)) {
            return files.map(f -> f.getFileName().toString()).filter(n -> n.matches("(model|optimizer)(-.+)?\\.safetensors")).sorted().toList();
        }
    }

    /**
     * The largest difference between two checkpoints' weights, each relative to the weight's size where it is above 1
     * (|a − b| / max(1, |a|)); infinite where they hold other weights. Their optimizer state may be split otherwise (a
     * run of fewer replicas), so it is not compared.
     */
    public static double weightDifference(Path a, Path b) {
        Map<String, float[]> wa = tensors(a, "model"), wb = tensors(b, "model");
        if (!wa.keySet().equals(wb.keySet())) return Double.POSITIVE_INFINITY;
        double largest = 0;
        for (Map.Entry<String, float[]> e : wa.entrySet()) {
            float[] x = e.getValue(), y = wb.get(e.getKey());
            if (x.length != y.length) return Double.POSITIVE_INFINITY;
            for (int i = 0; i < x.length; i++) largest = Math.max(largest, Math.abs(x[i] - y[i]) / Math.max(1.0, Math.abs(x[i])));
        }
        return largest;
    }

    /** Null when two checkpoints hold the same weights and optimizer state in the same files, byte for byte; else what differs. */
    public static String difference(Path a, Path b) throws IOException {
        List<String> files = stateFiles(a);
        if (!files.equals(stateFiles(b))) return "files " + files + " against " + stateFiles(b);
        for (String f : files) {
            if (Files.mismatch(a.resolve(f), b.resolve(f)) >= 0) return f + " differs";
        }
        return null;
    }
}
