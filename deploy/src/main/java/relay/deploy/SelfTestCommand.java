package relay.deploy;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import relay.stages.check.GradientCheck;
import relay.stages.check.SelfTest;
import relay.stages.tensor.cpu.CpuDevice;

@Command(name = "selftest", mixinStandardHelpOptions = true,
        description = "Checks every layer and both blocks against float64 finite differences on this machine's backend.")
final class SelfTestCommand implements Callable<Integer> {
    @Mixin
    DeviceOptions deviceOptions;

    @Mixin
    JsonOption json;

    @Option(names = "--seed", description = "random seed of the checks (default ${DEFAULT-VALUE})")
    long seed = 42;

    /** One JSON entry, field names as documented. */
    record CheckJson(String name, double max_rel_err, boolean pass, String worst) {}

    @Override
    public Integer call() {
        List<CheckJson> out = new ArrayList<>();
        int failed = 0;
        try (CpuDevice device = deviceOptions.open()) {
            System.out.printf("self-test on %s, threshold %.0e (max relative error)%n", device, GradientCheck.THRESHOLD);
            for (String name : SelfTest.names()) {
                GradientCheck.Result r = new SelfTest(device, seed).run(name);
                System.out.printf("  %-32s %10.3e  %s%s%n", r.name(), r.maxRelErr(), r.pass() ? "pass" : "FAIL",
                        r.pass() ? "" : " (worst: " + r.worst() + ")");
                out.add(new CheckJson(r.name(), r.maxRelErr(), r.pass(), r.worst()));
                if (!r.pass()) failed++;
            }
        }
        System.out.println(failed == 0 ? "all " + out.size() + " checks passed" : failed + " of " + out.size() + " checks FAILED");
        json.write(out);
        return failed == 0 ? 0 : 1;
    }
}
