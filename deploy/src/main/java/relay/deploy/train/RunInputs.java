package relay.deploy.train;

import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;
import relay.actors.Pipeline;
import relay.optimizers.Method;
import relay.stages.data.Corpus;
import relay.stages.data.InstructionDataset;
import relay.stages.data.Instructions;
import relay.stages.data.PackedDataset;
import relay.stages.io.HfModelDirectory;
import relay.stages.io.ModelFileException;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.text.BpeTrainer;
import relay.stages.text.Tokenizer;
import relay.stages.text.TokenizerJson;

/**
 * What a run starts from, every part of it checked before the run writes anything: the model (a preset, a
 * model directory, or the checkpoint being resumed), the tokenizer, the corpus encoded into sequences, and
 * where in the run it begins.
 *
 * @param weights the model directory the engine reads its weights from, or null for weights from the seed
 */
record RunInputs(ModelConfig model, Path weights, Tokenizer tokenizer, PackedDataset data, Start start) {
    /**
     * Where a run begins: at step 0, at a checkpoint's step and data position, or after a lost node at a snapshot's
     * in the memory of the nodes left (then {@code snapshot} is set and {@code checkpoint} null).
     */
    record Start(Path checkpoint, int step, PackedDataset.Position data, Pipeline.Snapshot snapshot) {
        static final Start FRESH = new Start(null, 0, new PackedDataset.Position(0, 0), null);

        Start(Path checkpoint, int step, PackedDataset.Position data) {
            this(checkpoint, step, data, null);
        }
    }

    /**
     * Checks and prepares everything a run with these settings needs, its memory against {@code room} before any of it is
     * allocated; {@code resumeFrom} (null: a new run) is a checkpoint or a run, whose checkpoints refused as damaged
     * {@code refused} hears of.
     */
    static RunInputs prepare(TrainConfig c, Path resumeFrom, Consumer<String> refused, RunMemory.Room room, PrintStream out) {
        Start start = resumeFrom == null ? Start.FRESH : Checkpoint.resumable(Checkpoint.locate(resumeFrom, refused), c);
        Source src = start.checkpoint() != null ? Source.checkpoint(start.checkpoint()) : Source.open(c.model().name());
        ModelConfig cfg = src.config();
        checkAgainstModel(c, cfg, start.checkpoint() == null);
        if (c.run().seq() > cfg.maxPositions()) {
            throw new IllegalArgumentException("configuration: relay.train.seq " + c.run().seq() + " exceeds the " + cfg.maxPositions()
                    + " positions of " + c.model().name());
        }
        RunMemory.check(c, cfg, start.step(), room);
        if (start.checkpoint() == null) src.checkWeights(c.precision());
        Tokenizer tokenizer = start.checkpoint() != null || c.model().tokenizer().isEmpty() ? src.tokenizer()
                : Tokenizer.read(Path.of(c.model().tokenizer()));
        Path instructions = Path.of(c.run().data());
        boolean instructed = Instructions.holds(instructions);
        List<String> docs = instructed ? null : corpus(c.run().data());
        if (tokenizer == null && instructed) {
            throw new ModelFileException(instructions, "instruction data needs a model with its own tokenizer.json (and a chat template for "
                    + "conversations); " + c.model().name() + " has none");
        }
        if (tokenizer == null) tokenizer = trainTokenizer(c, cfg, docs, out);
        if (tokenizer.size() > cfg.vocabSize()) {
            throw new ModelFileException(tokenizer.source(), "the tokenizer has " + tokenizer.size() + " entries, " + c.model().name()
                    + " only " + cfg.vocabSize() + ": a tokenizer for a larger vocabulary than the model's");
        }
        PackedDataset data = instructed ? instructionDataset(c, tokenizer, instructions, out) : dataset(c, tokenizer, docs, out);
        int evaluated = Math.min(c.run().evalSequences(), data.validationSequences());
        if (evaluated < c.pipeline().replicas()) {
            throw new IllegalArgumentException("configuration: relay.train.replicas " + c.pipeline().replicas() + " exceeds the " + evaluated
                    + " validation sequence(s) evaluated (eval-sequences " + c.run().evalSequences() + ", the validation set "
                    + data.validationSequences() + "): each replica evaluates a share; raise validation-fraction or eval-sequences");
        }
        data.seek(start.data());
        // LoRA's base never changes: a resumed LoRA run starts from the model it began with (its adapters come back with the
        // optimizer state).
        Path weights = start.checkpoint() != null && c.optimizer().method() == Method.LORA
                ? Source.open(c.model().name()).checkWeights(c.precision()).weights() : src.weights();
        return new RunInputs(cfg, weights, tokenizer, data, start);
    }

    /**
     * Settings that only make sense for some models, checked before anything is built: a rank no larger than the
     * narrowest block matrix's smaller side (a wider "low-rank" term holds more than the matrix, and a huge one only
     * exhausts the memory), and a LISA γ given for a new run no larger than the model's blocks. The default γ means every
     * block of a model with fewer, and a resumed run keeps the γ it started with (a resume cannot change it).
     */
    private static void checkAgainstModel(TrainConfig c, ModelConfig cfg, boolean fresh) {
        TrainConfig.OptimizerPart o = c.optimizer();
        if (fresh && o.samplesBlocks() && o.lisaGammaGiven() && o.lisa().gamma() > cfg.layers()) {
            throw new IllegalArgumentException("configuration: relay.train.lisa.gamma " + o.lisa().gamma() + " exceeds the " + cfg.layers()
                    + " blocks of " + c.model().name() + ": LISA trains at most every block, lisa.gamma ≤ " + cfg.layers());
        }
        Method m = o.method();
        if (m == Method.LORA || m == Method.RSO || m == Method.GALORE) {
            int narrowest = Math.min(Math.min(cfg.hidden(), cfg.intermediate()), Math.min(cfg.heads(), cfg.kvHeads()) * cfg.headDim());
            if (o.lowRank().rank() > narrowest) {
                throw new IllegalArgumentException("configuration: relay.train.rank " + o.lowRank().rank() + " exceeds " + narrowest
                        + ", the smaller side of " + c.model().name() + "'s narrowest block matrix; a rank-r term needs r ≤ " + narrowest);
            }
        }
    }

    /**
     * The same model, tokenizer and data for a run restarted from a checkpoint of its own, or (null) from its
     * start; a LoRA run's weights stay its base model's.
     */
    RunInputs restartFrom(Path checkpoint, TrainConfig c) {
        Start s = checkpoint == null ? Start.FRESH : Checkpoint.resumable(checkpoint, c);
        data.seek(s.data());
        return new RunInputs(model, checkpoint == null || c.optimizer().method() == Method.LORA ? weights : checkpoint, tokenizer, data, s);
    }

    /**
     * The same model, tokenizer and data for a run restarted from a snapshot in the nodes' memory, taken when the data
     * was at {@code position}; the stages are built as the run's were before the snapshot's values replace theirs.
     */
    RunInputs restartFrom(Pipeline.Snapshot snapshot, PackedDataset.Position position) {
        data.seek(position);
        return new RunInputs(model, weights, tokenizer, data, new Start(null, Math.toIntExact(snapshot.step()), position, snapshot));
    }

    /** Where a model comes from: its shape, the directory holding its weights (none for a preset) and its tokenizer (if it has one). */
    record Source(ModelConfig config, Path weights, Tokenizer tokenizer) {
        /** A preset, a config.json (fresh weights of its shape), or a model or run directory (its newest checkpoint). */
        static Source open(String model) {
            if (ModelConfig.PRESETS.contains(model)) return new Source(ModelConfig.named(model), null, null);
            Path p = Path.of(model);
            if (!Files.exists(p)) {
                throw new IllegalArgumentException("no model named '" + model + "': not a preset " + ModelConfig.PRESETS
                        + " and no such model directory");
            }
            if (Files.isRegularFile(p)) return new Source(ModelConfig.read(p), null, null);
            Path dir = Checkpoint.modelDirectory(p);
            Path tok = dir.resolve("tokenizer.json");
            return new Source(ModelConfig.read(dir.resolve("config.json")), dir, Files.isRegularFile(tok) ? Tokenizer.read(tok) : null);
        }

        /**
         * The weights read whole once, each present, of its shape and finite, and nothing else stored: after the run's
         * memory is checked, since it takes the model's size (in the run's precision).
         */
        Source checkWeights(relay.stages.model.Precision precision) {
            if (weights != null) {
                try (CpuDevice d = new CpuDevice("check", 1)) {
                    HfModelDirectory.load(weights, d, precision).close();
                }
            }
            return this;
        }

        /** A checkpoint of a run: its manifest has vouched for its files. */
        static Source checkpoint(Path checkpoint) {
            return new Source(ModelConfig.read(checkpoint.resolve("config.json")), checkpoint, Tokenizer.ofModel(checkpoint));
        }
    }

    static List<String> corpus(String data) {
        if (data.startsWith("builtin:")) {
            if (!data.equals("builtin:kjv")) throw new IllegalArgumentException("no built-in corpus '" + data + "' (builtin:kjv)");
            InputStream in = RunInputs.class.getResourceAsStream("/relay/corpus/kjv.txt.gz");
            if (in == null) throw new IllegalStateException("the built-in corpus is missing from the jar");
            return Corpus.read(Path.of("kjv.txt.gz"), in);
        }
        return Corpus.read(Path.of(data));
    }

    /** A byte-level BPE of the model's vocabulary size, trained on the corpus (a preset has no tokenizer of its own). */
    private static Tokenizer trainTokenizer(TrainConfig c, ModelConfig cfg, List<String> docs, PrintStream out) {
        if (cfg.vocabSize() < 257) {
            throw new IllegalArgumentException(c.model().name() + " has " + cfg.vocabSize() + " vocabulary entries and no tokenizer.json: a "
                    + "byte-level tokenizer trained on the corpus needs at least 257; use a model with more, or one with a tokenizer");
        }
        out.printf("training a byte-level BPE tokenizer of %d entries on %d documents...%n", cfg.vocabSize(), docs.size());
        long training = System.nanoTime();
        int every = Math.max(100, cfg.vocabSize() / 10 / 100 * 100);
        return TokenizerJson.load(BpeTrainer.train(docs, cfg.vocabSize(), List.of(TokenizerJson.END_OF_TEXT), merges -> {
            // Progress only for a tokenizer that takes a while (a large vocabulary).
            if (merges % every == 0 && System.nanoTime() - training > 5_000_000_000L) out.printf("  %d merges%n", merges);
        }));
    }

    /**
     * Instruction examples, one to a sequence or packed (relay.train.packing), the loss counting the answers only; what
     * was counted, masked and cut, and how many sequences the examples fill, is said.
     */
    private static PackedDataset instructionDataset(TrainConfig c, Tokenizer tokenizer, Path file, PrintStream out) {
        InstructionDataset d = InstructionDataset.of(file, Instructions.read(file), tokenizer, c.run().seq(), c.run().packing(),
                c.run().validationFraction(), c.run().seed());
        InstructionDataset.Stats s = d.stats();
        String layout = c.run().packing() ? "packed into " + s.rows() + " sequences" : "one to a sequence";
        out.printf("%s: %d examples, %s of %d (%d training, %d validation); %d tokens counted by the loss, %d prompt "
                + "tokens masked%s%n", file, s.examples(), layout, c.run().seq(), d.data().trainSequences(), d.data().validationSequences(),
                s.counted(), s.masked(), s.truncated() == 0 ? "" : "; " + s.truncated() + " examples cut at seq + 1 tokens");
        return d.data();
    }

    /**
     * The corpus encoded and packed into sequences, with its validation split: each document as the model's tokenizer
     * encodes a text (with the BOS or EOS its files add), then its end-of-sequence token.
     */
    private static PackedDataset dataset(TrainConfig c, Tokenizer tokenizer, List<String> docs, PrintStream out) {
        tokenizer.endOfDocument();
        long encoding = System.nanoTime();
        String data = c.run().data();
        PackedDataset d;
        try {
            // Progress only once encoding has taken a while: a large corpus, not the shipped one.
            d = PackedDataset.of(docs, tokenizer, c.run().seq(), c.run().validationFraction(), c.run().seed(), percent -> {
                if (System.nanoTime() - encoding > 5_000_000_000L) out.printf("tokenizing %s: %d%%%n", data, percent);
            });
        } catch (IllegalArgumentException e) {
            throw new ModelFileException(Path.of(data), e.getMessage(), e);
        }
        out.printf("%s: %d tokens, %d training and %d validation sequences of %d%n", data, d.tokens(), d.trainSequences(),
                d.validationSequences(), c.run().seq());
        return d;
    }
}
