package relay.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import picocli.CommandLine;
import relay.stages.io.HfModelDirectory;
import relay.stages.io.SafeTensors;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.text.BpeTrainer;
import relay.stages.text.ByteLevelBpe;
import relay.stages.text.TokenizerJson;

/**
 * Bad input for every command and option, and malformed files of every kind: each row must end with exit
 * code 2 and one line on the error stream that names the input, with no stack trace, and leave every file
 * as it was. A new option, or a new setting of relay train, needs a row here ({@link #everyOptionAndSettingHasARow}).
 */
class BadInputSweepTest {
    @TempDir
    static Path dir;

    static Path corpus, model, run, finished, corrupt, aFile;

    /** The fixtures: a corpus, a model directory with a tokenizer, damaged copies of both, and runs to resume. */
    @BeforeAll
    static void fixtures() throws Exception {
        corpus = write("corpus.txt", "In the beginning God created the heaven and the earth, and the word was made.\n".repeat(60));
        write("tiny.txt", "Jesus wept.\n");
        Files.write(dir.resolve("weights.bin"), new byte[] {'a', 'b', 0, 1, 2});
        Files.write(dir.resolve("latin1.txt"), "caf\u00e9 au lait\n".getBytes(StandardCharsets.ISO_8859_1));
        write("empty.txt", "\n \n");
        write("bad.jsonl", "{\"text\": \"ok\"}\nnot json\n");
        write("malformed.conf", "relay.train { steps = \n");
        String ask = "{\"messages\": [{\"role\": \"user\", \"content\": \"Who?\"}, {\"role\": \"assistant\", \"content\": \"Me.\"}]}\n";
        write("chat.jsonl", ask.repeat(3));
        write("noanswer.jsonl", ask + "{\"messages\": [{\"role\": \"user\", \"content\": \"Who?\"}]}\n");
        write("mixed.jsonl", ask + "{\"prompt\": \"Who?\", \"completion\": \"Me.\"}\n");
        aFile = write("afile.txt", "a file, not a directory");
        ByteLevelBpe tok = BpeTrainer.train(List.of(Files.readString(corpus)), 300, List.of(TokenizerJson.END_OF_TEXT), n -> { });
        model = dir.resolve("model");
        try (CpuDevice d = new CpuDevice("sweep", 1); Model m = Model.initialize(ModelConfig.named("llama-tiny"), d, 1)) {
            HfModelDirectory.save(m, model);
        }
        TokenizerJson.write(tok, model);
        String config = Files.readString(model.resolve("config.json"));
        damaged("heads0", config.replaceFirst("\"num_attention_heads\": 4", "\"num_attention_heads\": 0"));
        damaged("fractional", config.replaceFirst("\"num_hidden_layers\": 4", "\"num_hidden_layers\": 4.5"));
        damaged("oddhidden", config.replaceFirst("\"hidden_size\": 128", "\"hidden_size\": 130").replaceFirst("\"head_dim\": 32,", ""));
        byte[] weights = Files.readAllBytes(model.resolve("model.safetensors"));
        Files.write(damaged("truncated", config).resolve("model.safetensors"), Arrays.copyOf(weights, weights.length / 2));
        List<SafeTensors.Tensor32> nan = new ArrayList<>();
        try (SafeTensors st = SafeTensors.open(model.resolve("model.safetensors"))) {
            for (var e : st.entries().values()) {
                float[] v = st.read(e.name());
                if (e.name().equals("model.norm.weight")) v[3] = Float.NaN;
                nan.add(new SafeTensors.Tensor32(e.name(), e.shape(), v));
            }
        }
        SafeTensors.write(damaged("nanweights", config).resolve("model.safetensors"), nan, Map.of());
        Files.writeString(damaged("badtokenizer", config).resolve("tokenizer.json"),
                Files.readString(model.resolve("tokenizer.json")).replaceFirst("\": 0,", "\": -1,"));
        Files.delete(damaged("notokenizer", config).resolve("tokenizer.json"));
        Files.delete(damaged("noeos", config).resolve("tokenizer_config.json"));
        Files.createDirectories(dir.resolve("nothing"));
        // A run with a checkpoint to resume (4 steps of 6), one that is finished, and one with a corrupt checkpoint.
        run = trainRun("resumable", "6", "checkpoint-every=4");
        Path last = run.resolve("checkpoints/step-6");
        try (var files = Files.walk(last)) {
            for (Path p : files.sorted(java.util.Comparator.reverseOrder()).toList()) Files.delete(p);
        }
        finished = trainRun("finished", "2", "checkpoint-every=2");
        corrupt = trainRun("corrupt", "2", "checkpoint-every=2");
        Path w = corrupt.resolve("checkpoints/step-2/model-head.safetensors");
        byte[] b = Files.readAllBytes(w);
        b[b.length - 1] ^= 1;
        Files.write(w, b);
    }

    private static Path write(String name, String text) throws IOException {
        return Files.writeString(dir.resolve(name), text);
    }

    /** A copy of the model directory with its own config.json. */
    private static Path damaged(String name, String config) throws IOException {
        Path d = Files.createDirectories(dir.resolve(name));
        for (String f : List.of("model.safetensors", "tokenizer.json", "tokenizer_config.json")) Files.copy(model.resolve(f), d.resolve(f));
        Files.writeString(d.resolve("config.json"), config);
        return d;
    }

    private static Path trainRun(String name, String steps, String checkpoints) throws IOException {
        Path out = dir.resolve(name);
        StringWriter err = new StringWriter();
        assertEquals(0, Cli.run(err, "train", "--model", "llama-tiny", "--data", corpus.toString(), "--steps", steps, "--out",
                out.toString(), "batch=2", "seq=16", "microbatches=2", checkpoints, "trace-steps=0", "eval-every=100",
                "eval-sequences=2", "validation-fraction=0.1"), err::toString);
        try (var runs = Files.list(out)) {
            return runs.findFirst().orElseThrow();
        }
    }

    private static String p(String name) {
        return dir.resolve(name).toString();
    }

    /** A row: the arguments, and what its one line must name. */
    private static Arguments row(String names, String... args) {
        return Arguments.of(String.join(" ", args), names, args);
    }

    /** relay train with a small, valid shape, and one bad thing (an option replaces the key=value of the same setting: the two must agree). */
    private static Arguments train(String names, String... bad) {
        List<String> args = new ArrayList<>(List.of("train", "model=llama-tiny", "data=" + corpus, "steps=2", "out=" + p("runs"), "batch=2",
                "seq=16", "microbatches=2", "eval-sequences=2", "validation-fraction=0.1"));
        for (String option : List.of("model", "data", "steps", "out")) {
            if (Arrays.asList(bad).contains("--" + option)) args.removeIf(a -> a.startsWith(option + "="));
        }
        args.addAll(Arrays.asList(bad));
        return Arguments.of("train " + String.join(" ", bad), names, args.toArray(String[]::new));
    }

    static Stream<Arguments> rows() {
        String r = run.toString();
        return Stream.of(
                // relay train: files
                train("afile.txt", "--out", aFile.toString()),
                train("missing.txt: no such corpus file", "--data", p("missing.txt")),
                train("weights.bin: binary data, not text: a NUL byte at byte offset 2", "--data", p("weights.bin")),
                train("latin1.txt: not UTF-8 text: invalid byte 0xE9 at byte offset 3", "--data", p("latin1.txt")),
                train("empty.txt: the corpus holds no text", "--data", p("empty.txt")),
                train("bad.jsonl: line 2 is not JSON", "--data", p("bad.jsonl")),
                train("tiny.txt: the corpus gives", "--data", p("tiny.txt")),
                train("nosuch': not a preset", "--model", "nosuch"),
                train("heads0/config.json: field 'num_attention_heads' must be a positive whole number, not 0", "--model", p("heads0")),
                train("fractional/config.json: field 'num_hidden_layers' must be a whole number, not 4.5", "--model", p("fractional")),
                train("oddhidden/config.json: hidden_size 130 is not divisible by num_attention_heads 4", "--model", p("oddhidden")),
                train("truncated/model.safetensors", "--model", p("truncated")),
                train("nanweights/model.safetensors: tensor 'model.norm.weight' holds NaN at index 3", "--model", p("nanweights")),
                train("badtokenizer/tokenizer.json: the tokenizers library refuses it: invalid value: integer `-1`", "--model", p("badtokenizer")),
                train("noeos/tokenizer.json: no end-of-sequence token to end documents with: name one as \"eos_token\"", "--model", p("noeos")),
                train("unknown optimizer 'adamx'", "--optimizer", "adamx"),
                train("missing.conf: no such config file", "--config", p("missing.conf")),
                train("malformed.conf", "--config", p("malformed.conf")),
                train("'foo' is not key=value", "foo"),
                train("'--steps'", "--steps", "abc"),
                train("'--bogus'", "--bogus"),
                // relay train: every setting
                train("nosuch': not a preset", "model=nosuch"),
                train("missing.json", "tokenizer=" + p("missing.json")),
                train("no built-in corpus 'builtin:nope'", "data=\"builtin:nope\""),
                train("unknown optimizer 'adamx'", "optimizer=adamx"),
                train("relay.train.lr", "lr=-1"),
                train("relay.train.lr", "lr=NaN"),
                train("relay.train.warmup", "warmup=-1"),
                train("relay.train.weight-decay", "weight-decay=-1"),
                train("relay.train.beta1", "beta1=1"),
                train("relay.train.beta2", "beta2=-0.1"),
                train("relay.train.eps", "eps=0"),
                train("relay.train.clip-value", "clip-value=-1"),
                train("relay.train.clip-norm", "clip-norm=-1"),
                train("relay.train.clip-norm", "clip-norm=1", "mode=eager"),
                train("relay.train.lisa.gamma", "lisa.gamma=-1"),
                train("relay.train.lisa.period", "lisa.period=0"),
                train("relay.train.rank", "rank=0"),
                train("relay.train.rso-period", "rso-period=0"),
                train("relay.train.galore.gap", "galore.gap=0"),
                train("relay.train.galore.scale", "galore.scale=0"),
                train("relay.train.lora.alpha", "lora.alpha=0"),
                train("relay.train.steps", "steps=0"),
                train("relay.train.rebalance", "rebalance=maybe"),
                train("relay.train.recompute must be true or false, not 'maybe'", "recompute=maybe"),
                train("relay.train.packing must be true or false, not 'sometimes'", "packing=sometimes"),
                train("relay.train.dtype must be f32, bf16 or auto (the model directory's own), not 'fp8'", "dtype=fp8"),
                train("relay.train.dtype must be f32, bf16 or auto (the model directory's own), not 'fp16': float16 is not supported",
                        "dtype=fp16"),
                train("relay.train.activations must be f32, bf16 or auto (the dtype's), not 'f64'", "activations=f64"),
                train("steps", "steps=lots"),
                train("relay.train.batch", "batch=0"),
                train("relay.train.seq 100000 exceeds the 256 positions of llama-tiny", "seq=100000"),
                train("relay.train.microbatches", "microbatches=3"),
                train("relay.train.devices", "devices=0"),
                train("relay.train.schedule", "schedule=zigzag"),
                train("relay.train.mode", "mode=fast"),
                train("relay.train.replicas must be ≥ 1, not 0", "replicas=0"),
                train("relay.train.replicas must divide each microbatch's 1 sequences", "replicas=2"),
                train("relay.train.restarts", "restarts=-1"),
                train("relay.train.step-timeout", "step-timeout=0s"),
                train("relay.train.validation-fraction", "validation-fraction=0.9"),
                train("relay.train.eval-every", "eval-every=0"),
                train("relay.train.eval-sequences", "eval-sequences=0"),
                train("relay.train.checkpoint-every", "checkpoint-every=0"),
                train("relay.train.snapshot-every", "snapshot-every=often"),
                train("relay.train.threads-per-device", "threads-per-device=0"),
                train("relay.train.threads-per-device", "threads-per-device=many"),
                train("relay.train.keep-checkpoints", "keep-checkpoints=-1"),
                train("relay.train.trace-steps", "trace-steps=-1"),
                train("argument 'seed=abc'", "seed=abc"),
                train("afile.txt", "out=" + aFile),
                train("relay.train.learning-rate", "learning-rate=0.1"),
                train("relay.train.nodes", "nodes=0"),
                train("relay.train.replicas 2 exceeds the 1 validation sequence(s) evaluated", "batch=4", "replicas=2", "eval-sequences=1"),
                train("relay.train.nodes is 4: its 3 worker nodes need at least as many devices", "nodes=4"),
                // relay node
                row("--join must be host:port with a port in 0..65535, not nowhere", "node", "--join", "nowhere", "--index", "1"),
                row("--join must be host:port with a port in 0..65535, not 127.0.0.1:99999", "node", "--join", "127.0.0.1:99999", "--index", "1"),
                row("'relay.cluster.prot=1234': unknown setting relay.cluster.prot (did you mean relay.cluster.port?)", "node", "--join",
                        "127.0.0.1:1", "--index", "1", "relay.cluster.prot=1234"),
                row("--index must be 1 or more (0 is the coordinator's), not 0", "node", "--join", "127.0.0.1:1", "--index", "0"),
                row("relay.cluster.port must be in 0..65535, not 70000", "node", "--join", "127.0.0.1:1", "--index", "1", "--port", "70000"),
                row("relay.cluster.host must be this node's address (a host name or IP), not empty", "node", "--join", "127.0.0.1:1", "--index",
                        "1", "--host", ""),
                row("'--index'", "node", "--join", "127.0.0.1:1", "--index", "one"),
                // relay train: resuming
                row("nosuchrun: no such run or checkpoint directory", "train", "--resume", p("nosuchrun")),
                row("nothing: neither a run directory", "train", "--resume", p("nothing")),
                row("step-2/model-head.safetensors: corrupt", "train", "--resume", corrupt.toString()),
                row("is at step 2 and the run has 2 steps", "train", "--resume", finished.toString()),
                row("a resumed run cannot change relay.train.model (llama-tiny → gpt2-tiny)", "train", "--resume", r, "--model", "gpt2-tiny"),
                row("a resumed run cannot change relay.train.data", "train", "--resume", r, "data=" + p("latin1.txt")),
                row("a resumed run cannot change relay.train.optimizer (adalomo → adamw)", "train", "--resume", r, "--optimizer", "adamw"),
                row("a resumed run cannot change relay.train.seed (1234 → 5)", "train", "--resume", r, "seed=5"),
                row("a resumed run cannot change relay.train.dtype (auto → bf16)", "train", "--resume", r, "dtype=bf16"),
                row("--resume and --run: give one", "train", "--resume", r, "--run", r),
                row("--run " + aFile + " is a file", "train", "--run", aFile.toString()),
                // relay generate
                row("--top-p must be in (0, 1], not 0.0", "generate", "--model", model.toString(), "--prompt", "In", "--top-p", "0"),
                row("--top-p must be in (0, 1], not -1.0", "generate", "--model", model.toString(), "--prompt", "In", "--top-p", "-1"),
                row("--top-p must be in (0, 1], not 1.5", "generate", "--model", model.toString(), "--prompt", "In", "--top-p", "1.5"),
                row("--temperature must be a finite number ≥ 0 (0: greedy), not NaN", "generate", "--model", model.toString(), "--prompt", "In",
                        "--temperature", "NaN"),
                row("--temperature must be a finite number ≥ 0 (0: greedy), not -1.0", "generate", "--model", model.toString(), "--prompt", "In",
                        "--temperature", "-1"),
                row("--max-tokens must be ≥ 1, not -1", "generate", "--model", model.toString(), "--prompt", "In", "--max-tokens", "-1"),
                row("--top-k must be ≥ 0 (0: all tokens), not -1", "generate", "--model", model.toString(), "--prompt", "In", "--top-k", "-1"),
                row("'--seed'", "generate", "--model", model.toString(), "--prompt", "In", "--seed", "abc"),
                row("--prompt must be some text", "generate", "--model", model.toString(), "--prompt", ""),
                row("the prompt has", "generate", "--model", model.toString(), "--prompt", "and the word ".repeat(200)),
                row("'--prompt", "generate", "--model", model.toString()),
                row("absent: no such model directory", "generate", "--model", p("absent"), "--prompt", "In"),
                row("notokenizer/tokenizer.json: the model directory has no tokenizer.json", "generate", "--model", p("notokenizer"), "--prompt",
                        "In"),
                row("nanweights/model.safetensors: tensor 'model.norm.weight' holds NaN", "generate", "--model", p("nanweights"), "--prompt", "In"),
                row("heads0/config.json: field 'num_attention_heads'", "generate", "--model", p("heads0"), "--prompt", "In"),
                // instruction data and chat
                row("noanswer.jsonl: line 2 has no assistant message to learn from", "train", "--model", model.toString(), "--data",
                        p("noanswer.jsonl"), "--steps", "1", "--out", p("runs")),
                row("mixed.jsonl: line 2 mixes kinds", "eval", "--model", model.toString(), "--data", p("mixed.jsonl")),
                row("model: the model has no chat template", "eval", "--model", model.toString(), "--data", p("chat.jsonl")),
                row("model: the model has no chat template", "generate", "--model", model.toString(), "--prompt", "Hi", "--chat"),
                // a rank wider than the model's matrices (llama-tiny: 128 wide, kv heads 2 × 32)
                train("relay.train.rank 65 exceeds 64, the smaller side of llama-tiny's narrowest block matrix", "--optimizer", "lora",
                        "rank=65"),
                train("relay.train.rank 100000 exceeds 64", "--optimizer", "rso", "rank=100000"),
                // LISA's γ beyond the model's blocks (llama-tiny: 4), and a run beyond any machine's memory (llama-70b's weights
                // alone are 257 GiB), refused before anything is allocated
                train("relay.train.lisa.gamma 9 exceeds the 4 blocks of llama-tiny: LISA trains at most every block, lisa.gamma ≤ 4",
                        "lisa.gamma=9"),
                train("the run needs 526.1 GiB of memory as planned (parameters 257.0 GiB of it, a checkpoint's copy 257.0 GiB) and this "
                        + "machine has", "--model", "llama-70b"),
                // relay export
                row("model: not empty; export writes a new directory", "export", r, "--to", model.toString()),
                row("--to " + aFile + " is a file, not a directory", "export", r, "--to", aFile.toString()),
                row("--dtype: unknown dtype 'f8'; expected f32 or bf16", "export", r, "--to", p("export-f8"), "--dtype", "f8"),
                row("--max-shard-size must be ≥ 1, not 0", "export", r, "--to", p("export-0"), "--max-shard-size", "0"),
                row("is of a adalomo run: only a LoRA run has an adapter to export", "export", r, "--to", p("export-adapter"), "--adapter"),
                row("corrupt: its SHA-256 differs", "export", corrupt.toString(), "--to", p("export-corrupt")),
                // relay eval
                row("--seq must be ≥ 1, not 0", "eval", "--model", model.toString(), "--data", corpus.toString(), "--seq", "0"),
                row("--seq must be at most the model's 256 positions, not 100000", "eval", "--model", model.toString(), "--data",
                        corpus.toString(), "--seq", "100000"),
                row("--max-sequences must be ≥ 1, not -3", "eval", "--model", model.toString(), "--data", corpus.toString(),
                        "--max-sequences", "-3"),
                row("missing.txt: no such corpus file", "eval", "--model", model.toString(), "--data", p("missing.txt")),
                row("weights.bin: binary data", "eval", "--model", model.toString(), "--data", p("weights.bin")),
                row("noeos/tokenizer.json: no end-of-sequence token", "eval", "--model", p("noeos"), "--data", corpus.toString()),
                row("tiny.txt:", "eval", "--model", model.toString(), "--data", p("tiny.txt")),
                row("absent: no such model directory", "eval", "--model", p("absent"), "--data", corpus.toString()),
                // relay tokenizer train
                row("--vocab must be ≥ 257", "tokenizer", "train", "--corpus", corpus.toString(), "--vocab", "10", "--out", p("tok")),
                row("missing.txt: no such corpus file", "tokenizer", "train", "--corpus", p("missing.txt"), "--vocab", "300", "--out", p("tok")),
                row("--out " + aFile + " is a file", "tokenizer", "train", "--corpus", corpus.toString(), "--vocab", "300", "--out",
                        aFile.toString()),
                // relay selftest
                row("--threads must be ≥ 1, not 0", "selftest", "--threads", "0"),
                row("--json " + aFile.resolve("x.json") + ": " + aFile + " is a file", "selftest", "--json", aFile.resolve("x.json").toString()),
                row("'--seed'", "selftest", "--seed", "abc"),
                // relay bench
                row("--threads must be ≥ 1, not 0", "bench", "sgemm", "--threads", "0"),
                row("--repeats must be ≥ 1, not 0", "bench", "sgemm", "--repeats", "0"),
                row("--json " + dir + " is a directory", "bench", "sgemm", "--json", dir.toString()),
                row("--batch must be ≥ 1, not 0", "bench", "block", "--model", "llama-tiny", "--batch", "0"),
                row("--seq must be ≥ 1, not 0", "bench", "block", "--model", "llama-tiny", "--seq", "0"),
                row("--iterations must be ≥ 1, not 0", "bench", "block", "--model", "llama-tiny", "--iterations", "0"),
                row("no model named 'nosuch'", "bench", "block", "--model", "nosuch"),
                row("--threads must be ≥ 1, not -1", "bench", "block", "--threads", "-1"),
                row("--json", "bench", "block", "--json", dir.toString()),
                row("--iterations must be ≥ 1, not 0", "bench", "step", "--model", "llama-tiny", "--iterations", "0"),
                row("unknown optimizer 'adamx'", "bench", "step", "--model", "llama-tiny", "--optimizer", "adamx"),
                row("--threads must be ≥ 1, not 0", "bench", "step", "--threads", "0"),
                row("no model named 'nosuch'", "bench", "step", "--model", "nosuch"),
                row("--batch must be ≥ 1, not 0", "bench", "step", "--model", "llama-tiny", "--batch", "0"),
                row("--seq must be at most the model's 256 positions, not 100000", "bench", "step", "--model", "llama-tiny", "--seq", "100000"),
                row("--json " + dir + " is a directory", "bench", "step", "--model", "llama-tiny", "--json", dir.toString()),
                row("'--recompute'", "bench", "step", "--recompute=maybe"),
                row("--devices: devices '8x24': expected", "plan", "--model", "llama-tiny", "--devices", "8x24"),
                row("--devices must be at most the model's 6 stages, not 8", "plan", "--model", "llama-tiny", "--devices", "8x1GiB"),
                row("--devices must be at most the model's 6 stages for each of 3 replicas, and a multiple of 3, not 8", "plan", "--model",
                        "llama-tiny", "--devices", "8x1GiB", "--replicas", "3"),
                row("--replicas must be 1 with --fit (the search plans one replica), not 2", "plan", "--model", "llama-tiny", "--devices",
                        "2x1GiB", "--replicas", "2", "--fit"),
                row("--optimizer: unknown optimizer 'adamx'", "plan", "--model", "llama-tiny", "--devices", "2x1GiB", "--optimizer", "adamx"),
                row("--optimizer: optimizer 'sgd' runs on the plain loop only", "plan", "--model", "llama-tiny", "--devices", "2x1GiB",
                        "--optimizer", "sgd"),
                row("--microbatches must be ≥ 1 and divide --batch 4, not 3", "plan", "--model", "llama-tiny", "--devices", "2x1GiB",
                        "--microbatches", "3"),
                row("--schedule: unknown schedule 'zigzag'", "plan", "--model", "llama-tiny", "--devices", "2x1GiB", "--schedule", "zigzag"),
                row("--mode: must be eager or exact, not 'fast'", "plan", "--model", "llama-tiny", "--devices", "2x1GiB", "--mode", "fast"),
                row("'--fit'", "plan", "--devices", "2x1GiB", "--fit=maybe"),
                row("'--recompute'", "plan", "--devices", "2x1GiB", "--recompute=maybe"),
                row("its parameters alone (257.0 GiB) exceed this machine's memory", "plan", "--model", "llama-70b", "--devices", "2xcpu"),
                row("--stages must be ≥ 3 (embedding, a block, head), not 2", "bench", "simulate", "--stages", "2"),
                row("--devices must be between 1 and 64, not 65", "bench", "simulate", "--devices", "65"),
                row("--devices must be between 1 and 8, not 9", "bench", "simulate", "--stages", "8", "--devices", "9"),
                row("--microbatches must be ≥ 1, not 0", "bench", "simulate", "--microbatches", "0"),
                row("--schedule: unknown schedule 'zigzag'", "bench", "simulate", "--schedule", "zigzag"),
                row("--mode: must be eager or exact, not 'late'", "bench", "simulate", "--mode", "late"),
                row("--block-ms must be > 0 and ≤ 1000, not 0.0", "bench", "simulate", "--block-ms", "0"),
                row("--steps must be ≥ 1, not 0", "bench", "simulate", "--steps", "0"),
                row("--lisa-gamma must be between 0 and the 6 blocks, not 7", "bench", "simulate", "--stages", "8", "--devices", "2",
                        "--lisa-gamma", "7"),
                row("--json " + dir + " is a directory", "bench", "simulate", "--stages", "8", "--devices", "2", "--json", dir.toString()),
                row("--memory-bandwidth must be > 0 GB/s, not 0.0", "plan", "--model", "llama-tiny", "--devices", "2x1GiB",
                        "--memory-bandwidth", "0"),
                row("--bus must be > 0 GB/s, not -1.0", "plan", "--model", "llama-tiny", "--devices", "2x1GiB", "--bus", "-1"),
                row("--link must be > 0 GB/s, not NaN", "plan", "--model", "llama-tiny", "--devices", "2x1GiB", "--link", "NaN"),
                row("--seq must be at most the model's 256 positions, not 100000", "plan", "--model", "llama-tiny", "--devices", "2x1GiB", "--seq", "100000"),
                row("--batch must be ≥ 1, not 0", "plan", "--model", "llama-tiny", "--devices", "2x1GiB", "--batch", "0"),
                row("no model named 'nosuch'", "plan", "--model", "nosuch", "--devices", "2x1GiB"),
                row("--json " + dir + " is a directory", "plan", "--model", "llama-tiny", "--devices", "2x1GiB", "--json", dir.toString()),
                row("--dtype: unknown dtype 'fp8'; expected f32 or bf16", "plan", "--model", "llama-tiny", "--devices", "2x1GiB", "--dtype", "fp8"),
                row("--dtype: dtype 'fp16' is not supported (float16's range needs loss scaling); expected f32 or bf16", "plan", "--model",
                        "llama-tiny", "--devices", "2x1GiB", "--dtype", "fp16"),
                row("--dtype: unknown dtype 'f16x'; expected f32 or bf16", "bench", "memory", "--model", "llama-tiny", "--dtype", "f16x"),
                row("--dtype: unknown dtype 'half'; expected f32 or bf16", "bench", "step", "--model", "llama-tiny", "--dtype", "half"),
                row("--dtype: unknown dtype 'int8'; expected f32 or bf16", "bench", "finetune", "--dtype", "int8"),
                row("unknown optimizer 'adamx'", "bench", "memory", "--model", "llama-tiny", "--optimizer", "adamx"),
                row("--steps must be ≥ 1, not 0", "bench", "memory", "--steps", "0"),
                row("heads0/config.json", "bench", "memory", "--model", p("heads0")),
                row("--batch must be ≥ 1, not 0", "bench", "memory", "--model", "llama-tiny", "--batch", "0"),
                row("--seq must be at most the model's 256 positions, not 100000", "bench", "memory", "--model", "llama-tiny", "--seq", "100000"),
                row("--threads must be ≥ 1, not 0", "bench", "memory", "--threads", "0"),
                row("--json", "bench", "memory", "--json", dir.toString()),
                row("--steps must be ≥ 2, not 1", "bench", "finetune", "--steps", "1"),
                row("--tune-steps must be ≥ 2, not 0", "bench", "finetune", "--tune-steps", "0"),
                row("--pretrain-steps must be ≥ 0, not -1", "bench", "finetune", "--pretrain-steps", "-1"),
                row("--eval-every must be ≥ 1, not 0", "bench", "finetune", "--eval-every", "0"),
                row("--batch must be ≥ 1, not 0", "bench", "finetune", "--batch", "0"),
                row("--seq must be ≥ 2, not 1", "bench", "finetune", "--seq", "1"),
                row("unknown optimizer 'adamx'", "bench", "finetune", "--optimizers", "lomo,adamx"),
                row("--optimizers must be methods other than classic sgd, not sgd", "bench", "finetune", "--optimizers", "sgd"),
                row("no model named 'nosuch'", "bench", "finetune", "--model", "nosuch"),
                row("'--seed'", "bench", "finetune", "--seed", "abc"),
                row("--threads must be ≥ 1, not 0", "bench", "finetune", "--threads", "0"),
                row("--json", "bench", "finetune", "--json", dir.toString()),
                row("--html", "bench", "finetune", "--html", dir.toString()),
                row("--steps must be ≥ 1, not 0", "bench", "converge", "--steps", "0"),
                row("unknown optimizer 'adamx'", "bench", "converge", "--optimizers", "lomo,adamx"),
                row("--batch must be ≥ 1, not 0", "bench", "converge", "--batch", "0"),
                row("--seq must be ≥ 1, not 0", "bench", "converge", "--seq", "0"),
                row("no model named 'nosuch'", "bench", "converge", "--model", "nosuch"),
                row("'--seed'", "bench", "converge", "--seed", "abc"),
                row("--threads must be ≥ 1, not 0", "bench", "converge", "--threads", "0"),
                row("--json", "bench", "converge", "--json", dir.toString()),
                row("--devices must be ≥ 1, not 0", "bench", "pipeline", "--model", "llama-tiny", "--devices", "0"),
                row("--threads-per-device must be ≥ 1, not 0", "bench", "pipeline", "--model", "llama-tiny", "--threads-per-device", "0"),
                row("--devices must be at most the model's 6 stages, not 100", "bench", "pipeline", "--model", "llama-tiny", "--devices", "100"),
                row("--microbatches must be ≥ 1 and divide --batch 4, not 3", "bench", "pipeline", "--model", "llama-tiny", "--microbatches", "3"),
                row("--schedule: unknown schedule 'zigzag'", "bench", "pipeline", "--model", "llama-tiny", "--schedule", "zigzag"),
                row("--mode: must be eager or exact, not 'fast'", "bench", "pipeline", "--model", "llama-tiny", "--mode", "fast"),
                row("--replicas must be ≥ 1 and dividing --devices 2, not 3", "bench", "pipeline", "--model", "llama-tiny", "--replicas", "3"),
                row("--steps must be ≥ 1, not 0", "bench", "pipeline", "--model", "llama-tiny", "--steps", "0"),
                row("--clip-norm must be a finite number ≥ 0 (0: off), not -1.0", "bench", "pipeline", "--model", "llama-tiny", "--clip-norm", "-1"),
                row("--trace " + dir + " is a directory", "bench", "pipeline", "--model", "llama-tiny", "--trace", dir.toString()),
                row("--json " + dir + " is a directory", "bench", "pipeline", "--model", "llama-tiny", "--json", dir.toString()),
                row("no model named 'nosuch'", "bench", "pipeline", "--model", "nosuch"),
                row("--batch must be ≥ 1, not 0", "bench", "pipeline", "--model", "llama-tiny", "--batch", "0"),
                row("--seq must be ≥ 1, not 0", "bench", "pipeline", "--model", "llama-tiny", "--seq", "0"),
                row("--nodes must be ≥ 1, with no more workers than --devices 2, not 4", "bench", "pipeline", "--model", "llama-tiny", "--nodes", "4"),
                // relay bench transport
                row("--sizes must be sizes like 4MiB, 512KiB, not lots", "bench", "transport", "--sizes", "lots"),
                row("--sizes must be whole KiB from 1KiB to 1GiB, not 100", "bench", "transport", "--sizes", "100"),
                row("--messages must be ≥ 1, not 0", "bench", "transport", "--messages", "0"),
                row("--window must be ≥ 1, not 0", "bench", "transport", "--window", "0"),
                row("--paths must be names from plain, channel, streams, artery, aeron, channel-tls, streams-tls, not udp", "bench", "transport",
                        "--paths", "channel,udp"),
                row("does not exist or it does not refer to a normal file: " + p("missing.p12"), "bench", "transport", "--serve", "--tls-store",
                        p("missing.p12")),
                row("--json " + dir + " is a directory", "bench", "transport", "--json", dir.toString()),
                row("--sizes must be sizes like 4MiB, 512KiB, not x", "bench", "transport", "--serve", "--sizes", "x"),
                // relay bench chaos
                row("--kills must be ≥ 1, not 0", "bench", "chaos", "--kills", "0"),
                row("--steps must be ≥ 4 (a worker is killed after step 2 to steps − 1), not 3", "bench", "chaos", "--steps", "3"),
                row("--seed must be a whole number or random, not x", "bench", "chaos", "--seed", "x"),
                row("--replicas must be ≥ 1, not 0", "bench", "chaos", "--replicas", "0"),
                row("--mode: must be eager or exact, not 'fast'", "bench", "chaos", "--mode", "fast"),
                row("--json " + dir + " is a directory", "bench", "chaos", "--json", dir.toString()),
                // relay report
                row(dir.resolve("nowhere") + ": no such run directory", "report", dir.resolve("nowhere").toString()),
                row(dir + ": not a run directory (no config.conf)", "report", dir.toString()),
                // relay bench checkpoint
                row("no model named 'nosuch'", "bench", "checkpoint", "--model", "nosuch"),
                row("--batch must be ≥ 1, not 0", "bench", "checkpoint", "--model", "llama-tiny", "--batch", "0"),
                row("--schedule: unknown schedule 'zigzag'", "bench", "checkpoint", "--model", "llama-tiny", "--schedule", "zigzag"),
                row("--mode: must be eager or exact, not 'late'", "bench", "checkpoint", "--model", "llama-tiny", "--mode", "late"),
                row("--seq must be ≥ 1, not 0", "bench", "checkpoint", "--model", "llama-tiny", "--seq", "0"),
                row("unknown optimizer 'adamx'", "bench", "checkpoint", "--model", "llama-tiny", "--optimizer", "adamx"),
                row("--devices must be ≥ 1, not 0", "bench", "checkpoint", "--model", "llama-tiny", "--devices", "0"),
                row("--microbatches must be ≥ 1 and divide --batch 4, not 3", "bench", "checkpoint", "--model", "llama-tiny", "--microbatches", "3"),
                row("--steps must be ≥ 1, not 0", "bench", "checkpoint", "--model", "llama-tiny", "--steps", "0"),
                row("--every must be ≥ 1, not 0", "bench", "checkpoint", "--model", "llama-tiny", "--every", "0"),
                row("--nodes must be ≥ 1, with no more workers than --devices 2, not 4", "bench", "checkpoint", "--model", "llama-tiny",
                        "--nodes", "4"),
                row("--nodes must be 1 for sgd, which runs in the plain loop, not 2", "bench", "checkpoint", "--model", "llama-tiny",
                        "--optimizer", "sgd", "--nodes", "2"),
                row("--dir must be a directory, not " + aFile, "bench", "checkpoint", "--model", "llama-tiny", "--dir", aFile.toString()),
                row("--json " + dir + " is a directory", "bench", "checkpoint", "--model", "llama-tiny", "--json", dir.toString()),
                // relay cluster local
                row("--nodes must be 2 or more (a coordinator and at least one worker), not 1", "cluster", "local", "--nodes", "1"),
                row("'nodes=3': relay cluster local sets nodes from --nodes", "cluster", "local", "nodes=3"),
                row("relay.cluster.port: expected a port from 1 to 65535, got 'abc'", "cluster", "local", "relay.cluster.port=abc"));
    }

    /** Every file under the fixtures' directory and the working directory's runs/, with size and modification time. */
    private static Map<String, String> files() throws IOException {
        Map<String, String> all = new TreeMap<>();
        for (Path root : List.of(dir, Path.of("runs").toAbsolutePath())) {
            if (!Files.exists(root)) continue;
            try (var walk = Files.walk(root)) {
                for (Path f : walk.toList()) {
                    BasicFileAttributes a = Files.readAttributes(f, BasicFileAttributes.class);
                    all.put(f.toString(), a.size() + " " + a.lastModifiedTime());
                }
            }
        }
        return all;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("rows")
    void badInputIsOneLineNamingItAndLeavesNothingBehind(String shown, String names, String[] args) throws Exception {
        Map<String, String> before = files();
        StringWriter err = new StringWriter();
        PrintStream stdout = System.out, stderr = System.err;
        ByteArrayOutputStream printed = new ByteArrayOutputStream(), logged = new ByteArrayOutputStream();
        int code;
        try {
            System.setOut(new PrintStream(printed, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(logged, true, StandardCharsets.UTF_8));
            code = Cli.run(err, args);
        } finally {
            System.setOut(stdout);
            System.setErr(stderr);
        }
        String said = err + logged.toString(StandardCharsets.UTF_8);
        assertEquals(2, code, said);
        List<String> lines = said.lines().filter(l -> !l.isBlank()).toList();
        assertEquals(1, lines.size(), "one line: " + said);
        assertTrue(lines.get(0).startsWith("relay: ") && lines.get(0).contains(names), "names " + names + ": " + lines.get(0));
        assertFalse(said.contains("\tat ") || said.contains("Exception"), "no stack trace: " + said);
        assertEquals(before, files(), "nothing written, created or left behind");
    }

    /** Each option of each command, and each setting of relay train, appears in some row. */
    @Test
    void everyOptionAndSettingHasARow() {
        List<String> rows = rows().map(a -> (String) a.get()[0]).toList();
        List<String> missing = new ArrayList<>();
        walk(Relay.commandLine(), "", rows, missing);
        for (String key : com.typesafe.config.ConfigFactory.defaultReference().getConfig("relay.train").entrySet().stream()
                .map(Map.Entry::getKey).toList()) {
            if (rows.stream().noneMatch(r -> r.startsWith("train ") && r.contains(" " + key + "="))) missing.add("train " + key + "=");
        }
        assertEquals(List.of(), missing, "options and settings without a row in the sweep");
    }

    private static void walk(CommandLine cl, String path, List<String> rows, List<String> missing) {
        String here = path.isEmpty() ? "" : path + " ";
        if (!cl.getSubcommands().isEmpty()) {
            cl.getSubcommands().forEach((name, sub) -> walk(sub, here + name, rows, missing));
            return;
        }
        for (CommandLine.Model.OptionSpec o : cl.getCommandSpec().options()) {
            if (o.usageHelp() || o.versionHelp()) continue;
            if (rows.stream().noneMatch(r -> r.startsWith(here) && r.contains(" " + o.longestName()))) missing.add(here + o.longestName());
        }
    }
}
