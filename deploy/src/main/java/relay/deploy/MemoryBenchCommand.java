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
import relay.optimizers.OptimizerSettings;
import relay.optimizers.Method;
import relay.optimizers.bench.MemoryBench;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;

@Command(name = "memory", mixinStandardHelpOptions = true,
        description = "Peak memory per category (measured by the device ledger) of each optimizer on the plain training loop.")
final class MemoryBenchCommand implements Callable<Integer> {
    @Mixin
    DeviceOptions deviceOptions;

    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--optimizer", description = "one optimizer; default: all of them, as one table")
    String optimizer;

    @Option(names = "--steps", description = "steps per optimizer, the first allocating state (default ${DEFAULT-VALUE})")
    int steps = 3;

    @Mixin
    DTypeOption dtype;

    @Mixin
    JsonOption json;

    private static final Category[] COLUMNS = {Category.PARAMETERS, Category.GRADIENTS, Category.OPTIMIZER_STATE,
            Category.ACTIVATIONS, Category.COMMUNICATION, Category.WORKSPACE};

    @Override
    public Integer call() {
        Inputs.require(steps >= 1, "--steps", "≥ 1", steps);
        ModelConfig cfg = modelOptions.config();
        List<String> names = optimizer == null ? Method.keys() : List.of(Method.named(optimizer).key());
        List<MemoryBench.Result> results = new ArrayList<>();
        try (CpuDevice device = deviceOptions.open()) {
            for (String name : names) {
                System.out.printf("%-12s %s ...%n", name, Method.named(name).description());
                // Memory does not depend on the rate; a small one keeps every method stable on a large model.
                OptimizerSettings s = OptimizerSettings.defaults(1e-4f);
                results.add(MemoryBench.run(device, cfg, name, s, modelOptions.batch, modelOptions.seq, steps, dtype.precision()));
            }
        }
        double adamTotal = results.stream().filter(r -> r.optimizer().equals("adamw")).mapToDouble(MemoryBench.Result::totalPeakBytes)
                .findFirst().orElse(Double.NaN);
        Table t = new Table("optimizer", "params MiB", "grads MiB", "opt state MiB", "activations MiB", "comm MiB",
                "workspace MiB", "total MiB", "vs AdamW", "tokens/s");
        for (MemoryBench.Result r : results) {
            List<Object> row = new ArrayList<>(List.of(r.optimizer()));
            for (Category c : COLUMNS) row.add(mib(r.peakBytes().get(c)));
            row.add(mib(r.totalPeakBytes()));
            row.add(Double.isNaN(adamTotal) ? "-" : String.format("%.2f", r.totalPeakBytes() / adamTotal));
            row.add(String.format("%.0f", r.tokensPerSecond()));
            t.row(row.toArray());
        }
        System.out.printf("%nmodel %s in %s, batch %d × seq %d, peak bytes per category over %d steps%n",
                modelOptions.model, dtype.precision().weights().key(), modelOptions.batch, modelOptions.seq, steps);
        t.print(System.out);
        json.write(optimizer != null ? toJson(results.get(0)) : results.stream().map(MemoryBenchCommand::toJson).toList());
        return 0;
    }

    private static String mib(long bytes) {
        return String.format("%.1f", bytes / 1048576.0);
    }

    static Map<String, Object> toJson(MemoryBench.Result r) {
        Map<String, Object> peaks = new LinkedHashMap<>();
        for (Category c : COLUMNS) peaks.put(c.key(), r.peakBytes().get(c));
        peaks.put("total", r.totalPeakBytes());
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("optimizer", r.optimizer());
        o.put("dtype", r.dtype());
        o.put("peak_bytes", peaks);
        o.put("largest_parameter_bytes", r.largestParameterBytes());
        o.put("tokens_per_s", r.tokensPerSecond());
        o.put("last_loss", r.lastLoss());
        return o;
    }
}
