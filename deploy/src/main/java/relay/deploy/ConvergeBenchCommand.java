package relay.deploy;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import relay.optimizers.Method;
import relay.optimizers.bench.ConvergeBench;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;

@Command(name = "converge", mixinStandardHelpOptions = true,
        description = "Trains the same small model on the same seeded data with every optimizer; loss and time for each.")
final class ConvergeBenchCommand implements Callable<Integer> {
    @Mixin
    DeviceOptions deviceOptions;

    @Mixin
    ModelOptions modelOptions = new ModelOptions("llama-tiny", 8, 64);

    @Option(names = "--steps", description = "training steps per optimizer (default ${DEFAULT-VALUE})")
    int steps = 200;

    @Option(names = "--optimizers", split = ",", description = "comma-separated subset (default: all)")
    List<String> optimizers = Method.keys();

    @Option(names = "--seed", description = "seed of the model and the data (default ${DEFAULT-VALUE})")
    long seed = 17;

    @Mixin
    JsonOption json;

    @Override
    public Integer call() {
        Inputs.require(steps >= 1, "--steps", "≥ 1", steps);
        ModelConfig cfg = modelOptions.config();
        String model = modelOptions.model;
        int batch = modelOptions.batch, seq = modelOptions.seq;
        optimizers.forEach(Method::named);
        List<ConvergeBench.Curve> curves = new ArrayList<>();
        try (CpuDevice device = deviceOptions.open()) {
            for (String name : optimizers) {
                ConvergeBench.Curve c = ConvergeBench.run(device, cfg, name, steps, batch, seq, seed);
                System.out.printf("%-12s loss %.3f -> %.3f in %.1f s%n", name, c.losses()[0], c.finalLoss(), c.seconds());
                curves.add(c);
            }
        }
        Table t = new Table("optimizer", "lr", "first loss", "final loss", "seconds");
        for (ConvergeBench.Curve c : curves) {
            t.row(c.optimizer(), c.learningRate(), String.format("%.3f", c.losses()[0]), String.format("%.3f", c.finalLoss()),
                    String.format("%.1f", c.seconds()));
        }
        System.out.printf("%n%s, %d steps of %d × %d tokens, seed %d (final loss: mean of the last 5 steps)%n",
                model, steps, batch, seq, seed);
        t.print(System.out);
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("model", model);
        out.put("steps", steps);
        out.put("batch", batch);
        out.put("seq", seq);
        Map<String, Object> byOptimizer = new LinkedHashMap<>();
        for (ConvergeBench.Curve c : curves) {
            byOptimizer.put(c.optimizer(), Map.of("lr", c.learningRate(), "losses", c.losses(), "final_loss", c.finalLoss(),
                    "seconds", c.seconds()));
        }
        out.put("optimizers", byOptimizer);
        json.write(out);
        return 0;
    }
}
