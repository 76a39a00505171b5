package relay.deploy;

import picocli.CommandLine.Option;
import relay.stages.tensor.cpu.CpuDevice;

/** Options that choose the device a command computes on. */
final class DeviceOptions implements CheckedOptions {
    @Option(names = "--threads", description = "CPU threads for BLAS and kernels (default: all cores, ${DEFAULT-VALUE})")
    int threads = Runtime.getRuntime().availableProcessors();

    @Override
    public void check() {
        Inputs.require(threads >= 1, "--threads", "≥ 1", threads);
    }

    CpuDevice open() {
        check();
        return new CpuDevice("cpu0", threads);
    }
}
