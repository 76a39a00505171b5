package relay.deploy;

import picocli.CommandLine.Command;

@Command(name = "bench", mixinStandardHelpOptions = true, description = "Benchmarks; each prints a table and, with --json, writes JSON.",
        subcommands = {SgemmBenchCommand.class, BlockBenchCommand.class, MemoryBenchCommand.class, ConvergeBenchCommand.class, FinetuneBenchCommand.class, SimulateBenchCommand.class, PipelineBenchCommand.class, TransportBenchCommand.class, ChaosBenchCommand.class, CheckpointBenchCommand.class, StepBenchCommand.class})
final class BenchCommand implements Runnable {
    @Override
    public void run() {
        new picocli.CommandLine(this).usage(System.out);
    }
}
