package relay.deploy;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import relay.optimizers.Method;
import relay.optimizers.OptimizerSettings;
import relay.optimizers.bench.StepBench;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.DType;
import relay.stages.tensor.KernelClock;
import relay.stages.tensor.cpu.CpuDevice;

@Command(name = "step", mixinStandardHelpOptions = true,
        description = "The whole model's training step on the plain loop: model GFLOP/s against the sgemm peak measured in the "
                + "same process (mfu), tokens/s, the step's time by kernel family (sgemm also by shape), and memory by the ledger beside the process's VmHWM.")
final class StepBenchCommand implements Callable<Integer> {
    /** Matrix-product shapes listed under the sgemm share, the most time first (all of them are in the JSON). */
    private static final int SHAPES_SHOWN = 8;

    @Mixin
    DeviceOptions deviceOptions;

    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--optimizer", description = "the training method, any that `relay train` takes (default ${DEFAULT-VALUE})")
    String optimizer = "lomo";

    @Option(names = "--recompute", description = "blocks keep only their input and recompute their activations in backward")
    boolean recompute;

    @Mixin
    TimedIterations iterations = new TimedIterations(5);

    @Mixin
    DTypeOption dtype;

    @Mixin
    JsonOption json;

    @Override
    public Integer call() {
        ModelConfig cfg = modelOptions.config();
        String method = Method.named(optimizer).key();
        System.out.printf("%s in %s, batch %d × seq %d, %s%s, %d threads: sgemm on the step's shapes, then %d timed steps...%n",
                modelOptions.model, dtype.precision().weights().key(), modelOptions.batch, modelOptions.seq, method, recompute ? " with recompute" : "",
                deviceOptions.threads, iterations.count);
        StepBench.Result r = StepBench.run(modelOptions.model, cfg, modelOptions.batch, modelOptions.seq, deviceOptions.threads, method,
                OptimizerSettings.defaults(1e-4f), recompute, iterations.count, dtype.precision());
        Table t = new Table("metric", "value")
                .row("sgemm peak (best window of the fastest shape, between steps)", String.format("%.1f GFLOP/s", r.sgemmPeakGflops()))
                .row("model FLOPs per step (6N + 12·L·C·T per token)", String.format("%.3e", r.modelFlops()))
                .row("step time (median)", String.format("%.1f ms", r.medianSeconds() * 1e3))
                .row("achieved", String.format("%.1f GFLOP/s", r.achievedGflops()))
                .row("mfu", String.format("%.3f", r.mfu()))
                .row("tokens/s", String.format("%.1f", r.tokensPerSecond()));
        if (dtype.precision().weights() != DType.F32) {
            t.row("bf16 matrix products", CpuDevice.bf16Products());
        }
        r.shares().forEach((family, share) -> t.row("share of step: " + family, String.format("%.3f", share)));
        double stepNanos = r.medianSeconds() * 1e9 * r.stepSeconds().length;
        for (KernelClock.ShapeTime s : r.products().subList(0, Math.min(SHAPES_SHOWN, r.products().size()))) {
            t.row("  sgemm " + s.shape(), String.format("%.3f of step at %.1f GFLOP/s", s.nanos() / stepNanos, s.gflops()));
        }
        for (Category c : Category.values()) t.row("ledger peak " + c.key(), String.format("%.1f MiB", r.peakBytes().get(c) / 1048576.0));
        t.row("ledger peak total", String.format("%.1f MiB", r.ledgerPeakTotal() / 1048576.0))
                .row("process peak resident (VmHWM)", r.peakResidentBytes() < 0 ? "unknown" : String.format("%.1f MiB", r.peakResidentBytes() / 1048576.0))
                .row("  resident ÷ ledger peak", String.format("%.3f", r.residentOverLedger()))
                .row("  device arena reserved (tensors + free memory kept)", String.format("%.1f MiB", r.arenaReservedBytes() / 1048576.0))
                .row("  JVM heap committed (outside the ledger)", String.format("%.1f MiB", r.heapCommittedBytes() / 1048576.0))
                .print(System.out);
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("model", modelOptions.model);
        out.put("batch", modelOptions.batch);
        out.put("seq", modelOptions.seq);
        out.put("threads", deviceOptions.threads);
        out.put("optimizer", method);
        out.put("recompute", recompute);
        out.put("dtype", dtype.precision().weights().key());
        if (dtype.precision().weights() != DType.F32) out.put("bf16_products", CpuDevice.bf16Products());
        out.put("model_flops_per_step", r.modelFlops());
        out.put("sgemm_peak_gflops", r.sgemmPeakGflops());
        out.put("achieved_gflops", r.achievedGflops());
        out.put("mfu", r.mfu());
        out.put("tokens_per_s", r.tokensPerSecond());
        out.put("step_seconds", r.stepSeconds());
        out.put("shares", r.shares());
        out.put("sgemm_by_shape", r.products().stream().map(s -> Map.of("shape", s.shape(), "products", s.products(),
                "seconds", s.nanos() / 1e9, "gflops", s.gflops())).toList());
        out.put("ledger_peak_bytes", JsonOption.byCategory(r.peakBytes()));
        out.put("ledger_peak_total_bytes", r.ledgerPeakTotal());
        out.put("vm_hwm_bytes", r.peakResidentBytes());
        out.put("resident_over_ledger", r.residentOverLedger());
        out.put("arena_reserved_bytes", r.arenaReservedBytes());
        out.put("heap_committed_bytes", r.heapCommittedBytes());
        json.write(out);
        return 0;
    }
}
