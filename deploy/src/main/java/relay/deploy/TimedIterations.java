package relay.deploy;

import picocli.CommandLine.Option;

/** {@code --iterations}: how many steps a benchmark times after warming up; it reports their median. */
final class TimedIterations implements CheckedOptions {
    @Option(names = "--iterations", description = "timed steps after warm-up; the median is reported (default ${DEFAULT-VALUE})")
    int count;

    TimedIterations(int count) {
        this.count = count;
    }

    @Override
    public void check() {
        Inputs.require(count >= 1, "--iterations", "≥ 1", count);
    }
}
