package relay.deploy;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import relay.deploy.train.FinetunePage;
import relay.deploy.train.Testaments;
import relay.optimizers.Method;
import relay.optimizers.bench.FinetuneBench;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;

@Command(name = "finetune", mixinStandardHelpOptions = true,
        description = "The fine-tuning papers' comparison in miniature: pre-trains a model on the Old Testament, then fine-tunes it on "
                + "the New Testament with each method for the same tokens at its tuned learning rate; held-out loss, peak memory by "
                + "category and tokens/s, and the curves as a page.")
final class FinetuneBenchCommand implements Callable<Integer> {
    static final List<String> METHODS = List.of("adamw", "lomo", "adalomo", "lisa", "lisa-adalomo", "rso", "galore", "lora");
    /** Each method's learning rates tried: its fine-tuning rate (a tenth of its from-scratch one) times these. */
    static final float[] RATE_FACTORS = {1f / 3, 1f, 3f, 10f};

    @Mixin
    DeviceOptions deviceOptions;

    @Mixin
    ModelOptions modelOptions = new ModelOptions("llama-train", 8, 128);

    @Option(names = "--pretrain-steps", description = "AdaLomo steps on the Old Testament (default ${DEFAULT-VALUE})")
    int pretrainSteps = 400;

    @Option(names = "--steps", description = "fine-tuning steps of every method: the same token budget (default ${DEFAULT-VALUE})")
    int steps = 150;

    @Option(names = "--tune-steps", description = "steps of each learning-rate trial (default ${DEFAULT-VALUE})")
    int tuneSteps = 30;

    @Option(names = "--eval-every", description = "steps between held-out evaluations (default ${DEFAULT-VALUE})")
    int evalEvery = 10;

    @Option(names = "--optimizers", split = ",", description = "comma-separated subset (default: adamw, lomo, adalomo, lisa, lisa-adalomo, rso, galore, lora)")
    List<String> optimizers = METHODS;

    @Option(names = "--seed", description = "seed of the model and the data (default ${DEFAULT-VALUE})")
    long seed = 17;

    @Option(names = "--html", description = "write the curves as a self-contained HTML page to this file")
    Path html;

    @Mixin
    DTypeOption dtype;

    @Mixin
    JsonOption json;

    @Override
    public Integer call() {
        String model = modelOptions.model;
        int batch = modelOptions.batch, seq = modelOptions.seq;
        Inputs.require(seq >= 2, "--seq", "≥ 2", seq);
        Inputs.require(pretrainSteps >= 0, "--pretrain-steps", "≥ 0", pretrainSteps);
        Inputs.require(steps >= 2, "--steps", "≥ 2", steps);
        Inputs.require(tuneSteps >= 2, "--tune-steps", "≥ 2", tuneSteps);
        Inputs.require(evalEvery >= 1, "--eval-every", "≥ 1", evalEvery);
        Inputs.writableFile(html, "--html");
        ModelConfig cfg = modelOptions.config();
        optimizers.forEach(o -> Inputs.require(Method.named(o) != Method.SGD, "--optimizers", "methods other than classic sgd", o));
        Testaments data = Testaments.load(cfg, seq, batch, seed, System.out);
        List<FinetuneBench.Run> runs = new ArrayList<>();
        Map<String, List<Float>> tried = new LinkedHashMap<>();
        double baseLoss;
        try (CpuDevice device = deviceOptions.open()) {
            System.out.printf("pre-training %s with AdaLomo on the Old Testament: %d steps of %d × %d tokens...%n", model, pretrainSteps, batch, seq);
            long t0 = System.nanoTime();
            Map<String, float[]> base = FinetuneBench.pretrain(device, cfg, seed, data.oldTestament(), batch, pretrainSteps, s -> {
                if (s % 50 == 0) System.out.printf("  step %d, %.0f s%n", s, (System.nanoTime() - t0) / 1e9);
            });
            FinetuneBench.Setup tuning = new FinetuneBench.Setup(cfg, base, data.newTestament(), batch, tuneSteps, warmup(tuneSteps),
                    data.tuning(), tuneSteps, dtype.precision());
            FinetuneBench.Setup full = new FinetuneBench.Setup(cfg, base, data.newTestament(), batch, steps, warmup(steps), data.test(), evalEvery,
                    dtype.precision());
            for (String name : optimizers) {
                float best = Float.NaN;
                double bestLoss = Double.POSITIVE_INFINITY;
                List<Float> rates = new ArrayList<>();
                for (float f : RATE_FACTORS) {
                    float lr = Method.named(name).defaultLearningRate() / 10 * f;
                    rates.add(lr);
                    double l = FinetuneBench.run(device, tuning, name, lr, seed).finalValidation();
                    System.out.printf("%-12s lr %-9.3g tuning loss after %d steps %.4f%n", name, lr, tuneSteps, l);
                    if (l < bestLoss) {
                        bestLoss = l;
                        best = lr;
                    }
                }
                tried.put(name, rates);
                FinetuneBench.Run r = FinetuneBench.run(device, full, name, best, seed);
                System.out.printf("%-12s lr %-9.3g held-out loss %.4f -> %.4f, %.1f MiB, %.0f tokens/s%n", name, best,
                        r.validation().get(0)[1], r.finalValidation(), r.peakTotal() / 1048576.0, r.tokensPerSecond());
                runs.add(r);
            }
            baseLoss = runs.isEmpty() ? Double.NaN : runs.get(0).validation().get(0)[1];
        }
        Table t = new Table("optimizer", "lr", "held-out loss", "perplexity", "peak MiB", "parameters", "gradients", "optimizer state",
                "activations", "tokens/s");
        for (FinetuneBench.Run r : runs) {
            t.row(r.optimizer(), String.format("%.3g", r.lr()), String.format("%.4f", r.finalValidation()),
                    String.format("%.2f", Math.exp(r.finalValidation())), mib(r.peakTotal()), mib(r.peakBytes(), Category.PARAMETERS),
                    mib(r.peakBytes(), Category.GRADIENTS), mib(r.peakBytes(), Category.OPTIMIZER_STATE), mib(r.peakBytes(), Category.ACTIVATIONS),
                    String.format("%.0f", r.tokensPerSecond()));
        }
        String setting = String.format("%s pre-trained %d steps on the Old Testament (held-out loss %.4f before fine-tuning), then %d steps of "
                + "%d × %d tokens of the New Testament per method in %s; learning rate: the best of %s × each method's fine-tuning rate (a "
                + "tenth of its from-scratch one) after %d steps, by loss on other held-out verses", model, pretrainSteps, baseLoss, steps, batch,
                seq, dtype.dtype().key(), factorNames(), tuneSteps);
        System.out.printf("%n%s%n", setting);
        t.print(System.out);
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("model", model);
        out.put("pretrain_steps", pretrainSteps);
        out.put("steps", steps);
        out.put("batch", batch);
        out.put("seq", seq);
        out.put("tune_steps", tuneSteps);
        out.put("dtype", dtype.dtype().key());
        out.put("base_held_out_loss", baseLoss);
        Map<String, Object> byOptimizer = new LinkedHashMap<>();
        for (FinetuneBench.Run r : runs) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("lr", r.lr());
            m.put("lrs_tried", tried.get(r.optimizer()));
            m.put("held_out_loss", r.finalValidation());
            m.put("held_out", r.validation());
            m.put("losses", r.losses());
            m.put("peak_bytes", r.peakTotal());
            m.put("peak_bytes_by_category", JsonOption.byCategory(r.peakBytes()));
            m.put("tokens_per_s", r.tokensPerSecond());
            byOptimizer.put(r.optimizer(), m);
        }
        out.put("optimizers", byOptimizer);
        json.write(out);
        if (html != null) {
            try {
                FinetunePage.write(html, "Fine-tuning on the New Testament", Map.of("setting", setting), runs);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot write " + html + ": " + e.getMessage(), e);
            }
            System.out.println("curves: " + html);
        }
        return 0;
    }

    /** The rate factors as a reader writes them: 1/3, 1, 3, 10. */
    private static String factorNames() {
        List<String> names = new ArrayList<>();
        for (float f : RATE_FACTORS) names.add(f < 1 ? "1/" + Math.round(1 / f) : String.valueOf(Math.round(f)));
        return String.join(", ", names);
    }

    private static int warmup(int steps) {
        return Math.max(1, steps / 20);
    }

    private static String mib(long bytes) {
        return String.format("%.1f", bytes / 1048576.0);
    }

    private static String mib(Map<Category, Long> peaks, Category c) {
        return mib(peaks.getOrDefault(c, 0L));
    }
}
