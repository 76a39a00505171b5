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
import relay.stages.bench.SgemmBench;
import relay.stages.tensor.cpu.CpuDevice;

@Command(name = "sgemm", mixinStandardHelpOptions = true,
        description = "Measures float32 matrix-multiply throughput on square shapes (the machine's peak that MFU is judged against).")
final class SgemmBenchCommand implements Callable<Integer> {
    @Mixin
    DeviceOptions deviceOptions;

    @Option(names = "--repeats", description = "timed repetitions per shape, best kept (default ${DEFAULT-VALUE})")
    int repeats = 5;

    @Mixin
    JsonOption json;

    @Override
    public Integer call() {
        Inputs.require(repeats >= 1, "--repeats", "≥ 1", repeats);
        try (CpuDevice device = deviceOptions.open()) {
            List<SgemmBench.Measurement> ms = new SgemmBench(device, repeats).measure(SgemmBench.squareShapes());
            Table t = new Table("shape", "GFLOP/s", "ms");
            List<Map<String, Object>> shapes = new ArrayList<>();
            for (SgemmBench.Measurement m : ms) {
                t.row(m.shape(), String.format("%.1f", m.gflops()), String.format("%.2f", m.seconds() * 1e3));
                shapes.add(Map.of("shape", m.shape().toString(), "m", m.shape().m(), "n", m.shape().n(),
                        "k", m.shape().k(), "gflops", m.gflops()));
            }
            t.print(System.out);
            double peak = SgemmBench.peak(ms);
            System.out.printf("sgemm peak: %.1f GFLOP/s on %d threads%n", peak, device.threads());
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("sgemm_peak_gflops", peak);
            out.put("threads", device.threads());
            out.put("shapes", shapes);
            json.write(out);
        }
        return 0;
    }
}
