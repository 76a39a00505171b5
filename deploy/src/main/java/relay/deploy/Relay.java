package relay.deploy;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The relay command line. */
@Command(name = "relay", mixinStandardHelpOptions = true, version = "relay 0.1.0",
        description = "Full-parameter training of decoder-only language models with in-backward optimizers.",
        subcommands = {TrainCommand.class, GenerateCommand.class, EvalCommand.class, TokenizerCommand.class, SelfTestCommand.class,
                BenchCommand.class})
public final class Relay implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    public static void main(String[] args) {
        // Logging starts before the actor system does, so nothing is replayed with a warning.
        org.slf4j.LoggerFactory.getILoggerFactory();
        System.exit(commandLine().execute(args));
    }

    /** The configured command line, shared by main and the tests. */
    static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new Relay());
        cl.setExecutionExceptionHandler((e, cmd, parsed) -> {
            // Bad input is reported as one clear line; anything else keeps its stack trace.
            if (e instanceof IllegalArgumentException || e instanceof java.io.UncheckedIOException) {
                cmd.getErr().println("relay: " + e.getMessage());
                return 2;
            }
            // A training step that failed (a diverged loss, a stage's error) is reported, not a bug's trace.
            if (e instanceof relay.deploy.train.TrainingRun.Failed) {
                cmd.getErr().println("relay: " + e.getMessage());
                return 1;
            }
            throw e;
        });
        return cl;
    }
}
