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
import relay.stages.bench.BlockBench;
import relay.stages.bench.SgemmBench;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;

@Command(name = "block", mixinStandardHelpOptions = true,
        description = "Times one transformer block's forward and backward and reports MFU against the sgemm peak "
                + "measured in the same process on the block's own matrix shapes.")
final class BlockBenchCommand implements Callable<Integer> {
    @Mixin
    DeviceOptions deviceOptions;

    @Mixin
    ModelOptions modelOptions;

    @Mixin
    TimedIterations iterations = new TimedIterations(10);

    @Mixin
    JsonOption json;

    @Override
    public Integer call() {
        ModelConfig cfg = modelOptions.config();
        String model = modelOptions.model;
        int batch = modelOptions.batch, seq = modelOptions.seq;
        try (CpuDevice device = deviceOptions.open()) {
            System.out.printf("block of %s, batch %d × seq %d, %d threads: measuring sgemm on the block's shapes...%n",
                    model, batch, seq, device.threads());
            BlockBench.Result r = BlockBench.run(device, model, cfg, batch, seq, iterations.count);
            Table shapes = new Table("block matmul", "GFLOP/s");
            for (SgemmBench.Measurement m : r.shapes()) shapes.row(m.shape(), String.format("%.1f", m.gflops()));
            shapes.print(System.out);
            System.out.println();
            new Table("metric", "value")
                    .row("sgemm peak (best window of the fastest shape, between steps)", String.format("%.1f GFLOP/s", r.sgemmPeakGflops()))
                    .row("sgemm best short window up front (any block shape)", String.format("%.1f GFLOP/s", r.upFrontPeakGflops()))
                    .row("model FLOPs per fwd+bwd", String.format("%.3e", r.modelFlops()))
                    .row("step time (median)", String.format("%.1f ms", r.medianSeconds() * 1e3))
                    .row("step time (best)", String.format("%.1f ms", r.bestSeconds() * 1e3))
                    .row("achieved", String.format("%.1f GFLOP/s", r.achievedGflops()))
                    .row("mfu", String.format("%.3f", r.mfu()))
                    .row("mfu against the up-front best window", String.format("%.3f", r.upFrontMfu()))
                    .row("activation peak", String.format("%.1f MiB", r.peakBytes().get(Category.ACTIVATIONS) / 1048576.0))
                    .print(System.out);
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("model", model);
            out.put("batch", batch);
            out.put("seq", seq);
            out.put("threads", r.threads());
            out.put("sgemm_peak_gflops", r.sgemmPeakGflops());
            out.put("model_flops", r.modelFlops());
            out.put("step_seconds_median", r.medianSeconds());
            out.put("step_seconds_best", r.bestSeconds());
            out.put("step_seconds", r.stepSeconds());
            out.put("achieved_gflops", r.achievedGflops());
            out.put("mfu", r.mfu());
            out.put("sgemm_peak_up_front_gflops", r.upFrontPeakGflops());
            out.put("mfu_up_front", r.upFrontMfu());
            out.put("sgemm_peak_after_step_gflops", r.stepPeakGflops());
            out.put("peak_bytes", JsonOption.byCategory(r.peakBytes()));
            List<Map<String, Object>> shapeList = new ArrayList<>();
            for (SgemmBench.Measurement m : r.shapes()) shapeList.add(Map.of("shape", m.shape().toString(), "gflops", m.gflops()));
            out.put("block_shapes", shapeList);
            json.write(out);
        }
        return 0;
    }
}
