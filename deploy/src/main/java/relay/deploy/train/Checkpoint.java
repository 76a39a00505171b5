package relay.deploy.train;

import com.google.gson.Gson;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import relay.stages.data.PackedDataset;
import relay.stages.io.HfModelDirectory;
import relay.stages.io.ModelFileException;
import relay.stages.io.SafeTensors;
import relay.stages.model.ModelConfig;
import relay.stages.text.Tokenizer;
import relay.stages.text.TokenizerJson;

/**
 * A checkpoint, {@code checkpoints/step-N} of a run directory: a Hugging Face model directory with the
 * tokenizer, {@code optimizer.safetensors} ("parameter/role" → values), {@code trainer_state.json} (step,
 * data position, optimizer, seed) and {@code manifest.json}, the SHA-256 of every other file, written last:
 * a checkpoint with a manifest is complete, and one whose files differ from it is corrupt.
 */
public final class Checkpoint {
    static final String MANIFEST = "manifest.json";
    static final String TRAINER_STATE = "trainer_state.json";
    static final String OPTIMIZER_STATE = "optimizer.safetensors";

    /** Where a run stood when the checkpoint was written. */
    record TrainerState(int step, PackedDataset.Position data, String optimizer, long seed) {}

    private Checkpoint() {}

    static Path directory(Path run, int step) {
        return run.resolve("checkpoints").resolve("step-" + step);
    }

    /** Writes checkpoint {@code step} of a run: the model's weights as a Hugging Face directory, its tokenizer, and what a resume needs. */
    static void write(Path run, int step, ModelConfig cfg, List<SafeTensors.Tensor32> weights, Map<String, float[]> optimizerState,
                      Tokenizer tokenizer, PackedDataset.Position data, TrainConfig c) throws IOException {
        Path dir = directory(run, step);
        Files.deleteIfExists(dir.resolve(MANIFEST));
        HfModelDirectory.save(cfg, weights, dir);
        TokenizerJson.write(tokenizer, dir.resolve("tokenizer.json"));
        List<SafeTensors.Tensor32> values = new ArrayList<>();
        optimizerState.forEach((name, v) -> values.add(new SafeTensors.Tensor32(name, new int[] {v.length}, v)));
        String method = c.optimizer().method().key();
        SafeTensors.write(dir.resolve(OPTIMIZER_STATE), values, Map.of("optimizer", method));
        Map<String, Object> state = new LinkedHashMap<>();
        state.put("step", step);
        state.put("data_epoch", data.epoch());
        state.put("data_index", data.index());
        state.put("optimizer", method);
        state.put("lisa_gamma", c.optimizer().lisaGamma());
        state.put("lisa_period", c.optimizer().lisaPeriod());
        state.put("seed", c.run().seed());
        Files.writeString(dir.resolve(TRAINER_STATE), new Gson().toJson(state), StandardCharsets.UTF_8);
        Map<String, String> sums = new LinkedHashMap<>();
        try (var files = Files.list(dir)) {
            for (Path f : files.sorted().toList()) sums.put(f.getFileName().toString(), sha256(f));
        }
        Map<String, Object> manifest = new LinkedHashMap<>();
        manifest.put("step", step);
        manifest.put("sha256", sums);
        Files.writeString(dir.resolve(MANIFEST), new Gson().toJson(manifest), StandardCharsets.UTF_8);
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
        if (state.step() >= c.run().steps()) {
            throw new IllegalArgumentException(checkpoint + " is at step " + state.step() + " and the run has " + c.run().steps()
                    + " steps: raise steps (e.g. steps=" + (state.step() + c.run().steps()) + ") to train on");
        }
        return new RunInputs.Start(checkpoint, state.step(), state.data());
    }

    /** Deletes the run's complete checkpoints but the newest {@code keep} (0 keeps them all). */
    static void prune(Path run, int keep) throws IOException {
        if (keep == 0) return;
        List<Path> complete = complete(run.resolve("checkpoints"));
        for (Path old : complete.subList(0, Math.max(0, complete.size() - keep))) {
            try (var files = Files.walk(old)) {
                // The manifest goes first, so a deletion cut short leaves an incomplete checkpoint, never a corrupt one.
                Files.delete(old.resolve(MANIFEST));
                for (Path f : files.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(f);
            }
        }
    }

    /** A run's complete checkpoints (those with a manifest), oldest first. */
    private static List<Path> complete(Path checkpoints) throws IOException {
        try (var dirs = Files.list(checkpoints)) {
            return dirs.filter(d -> d.getFileName().toString().matches("step-\\d+"))
                    .filter(d -> Files.isRegularFile(d.resolve(MANIFEST)))
                    .sorted(Comparator.comparingInt(d -> Integer.parseInt(d.getFileName().toString().substring(5))))
                    .toList();
        }
    }

    /**
     * The checkpoint to resume from {@code path}: a checkpoint directory itself, or a run directory's newest
     * complete checkpoint. A missing path, or a run without a complete checkpoint, is an error saying so.
     */
    public static Path locate(Path path) {
        if (!Files.isDirectory(path)) throw new IllegalArgumentException(path + ": no such run or checkpoint directory");
        if (Files.isRegularFile(path.resolve(TRAINER_STATE))) return path;
        Path checkpoints = path.resolve("checkpoints");
        if (!Files.isDirectory(checkpoints)) {
            throw new IllegalArgumentException(path + ": neither a run directory (no checkpoints/) nor a checkpoint (no " + TRAINER_STATE + ")");
        }
        try {
            List<Path> complete = complete(checkpoints);
            if (complete.isEmpty()) throw new IllegalArgumentException(checkpoints + ": no complete checkpoint (one with a " + MANIFEST + ")");
            return complete.get(complete.size() - 1);
        } catch (IOException e) {
            throw new IllegalArgumentException(checkpoints + ": " + e.getMessage(), e);
        }
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
     * A path that is neither is an error saying what it is.
     */
    public static Path modelDirectory(Path path) {
        if (!Files.exists(path)) throw new ModelFileException(path, "no such model directory");
        if (!Files.isDirectory(path)) throw new ModelFileException(path, "a file, not a model directory");
        if (Files.isRegularFile(path.resolve("config.json"))) return path;
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
                if (!sha256(f).equals(sums.get(name).getAsString())) {
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
                    o.get("optimizer").getAsString(), o.get("seed").getAsLong());
        } catch (IOException | RuntimeException e) {
            throw new ModelFileException(f, "not a trainer state (step, data_epoch, data_index, optimizer, seed): " + e.getMessage(), e);
        }
    }

    static Map<String, float[]> optimizerState(Path dir) {
        Map<String, float[]> values = new LinkedHashMap<>();
        try (SafeTensors st = SafeTensors.open(dir.resolve(OPTIMIZER_STATE))) {
            for (String name : st.entries().keySet()) values.put(name, st.read(name));
        }
        return values;
    }

    private static String sha256(Path f) throws IOException {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            try (InputStream in = Files.newInputStream(f)) {
                byte[] buf = new byte[1 << 16];
                int n;
                while ((n = in.read(buf)) > 0) md.update(buf, 0, n);
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
