package relay.deploy;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import relay.actors.NodesUnavailable;
import relay.deploy.train.TrainingRun;

/** The relay command line. */
@Command(name = "relay", mixinStandardHelpOptions = true, version = "relay 0.1.0",
        description = "Full-parameter training of decoder-only language models with in-backward optimizers.",
        subcommands = {TrainCommand.class, PlanCommand.class, ClusterCommand.class, NodeCommand.class, GenerateCommand.class, EvalCommand.class, ExportCommand.class, ReportCommand.class, TokenizerCommand.class, SelfTestCommand.class,
                BenchCommand.class})
public final class Relay implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    /** Set by a launcher that starts relay JVMs as its children (relay cluster local): their standard input is its pipe. */
    static final String PARENT_PIPE = "RELAY_PARENT_PIPE";

    public static void main(String[] args) {
        // Logging starts before the actor system does, so nothing is replayed with a warning.
        org.slf4j.LoggerFactory.getILoggerFactory();
        if (System.getenv(PARENT_PIPE) != null) stopWhenTheParentIsGone();
        System.exit(commandLine().execute(args));
    }

    /**
     * A launcher's child ends with it, however it ends (kill -9 included): the operating system closes the launcher's
     * end of the pipe on the child's standard input, and the child stops as on SIGTERM — after the step in progress,
     * with its checkpoint — instead of training on unsupervised.
     */
    private static void stopWhenTheParentIsGone() {
        Thread watch = new Thread(() -> {
            try {
                while (System.in.read() >= 0) {
                    // The launcher writes nothing; end of input is what is waited for.
                }
            } catch (IOException e) {
                // A broken pipe is a gone parent too.
            }
            System.err.println("relay: the launcher is gone; stopping");
            System.exit(143);
        }, "relay-parent-watch");
        watch.setDaemon(true);
        watch.start();
    }

    /**
     * The configured command line, shared by main and the tests. It is the one place where errors become
     * exit codes: input that a command refuses (an {@link IllegalArgumentException}: a bad option, setting or
     * file) is one line and exit 2; a failed training step or an I/O failure of the machine is one line and
     * exit 1; anything else is a bug and keeps its stack trace. Before a command runs, the {@link CheckedOptions}
     * among its mixins are checked.
     */
    static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new Relay());
        cl.setExecutionStrategy(Relay::checkThenRun);
        cl.registerConverter(Path.class, Inputs::path);
        cl.getSubcommands().get("train").getCommandSpec().usageMessage().footer(TrainCommand.methods());
        cl.setParameterExceptionHandler((e, args) -> {
            e.getCommandLine().getErr().println(oneLine(e.getMessage()) + " (see " + e.getCommandLine().getCommandSpec().qualifiedName()
                    + " --help)");
            return 2;
        });
        cl.setExecutionExceptionHandler((e, cmd, parsed) -> {
            if (e instanceof IllegalArgumentException) {
                cmd.getErr().println(oneLine(e.getMessage()));
                return 2;
            }
            if (e instanceof TrainingRun.Failed || e instanceof NodesUnavailable || e instanceof IOException || e instanceof UncheckedIOException) {
                cmd.getErr().println(oneLine(e.getMessage() != null ? e.getMessage() : e.toString()));
                return 1;
            }
            throw e;
        });
        return cl;
    }

    private static int checkThenRun(CommandLine.ParseResult parsed) {
        Integer help = CommandLine.executeHelpRequest(parsed);
        if (help != null) return help;
        java.util.List<CommandLine> chain = parsed.asCommandLineList();
        CommandLine command = chain.get(chain.size() - 1);
        try {
            for (CommandLine.Model.CommandSpec mixin : command.getCommandSpec().mixins().values()) {
                if (mixin.userObject() instanceof CheckedOptions options) options.check();
            }
        } catch (IllegalArgumentException e) {
            throw new CommandLine.ExecutionException(command, e.getMessage(), e);
        }
        return new CommandLine.RunLast().execute(parsed);
    }

    private static String oneLine(String message) {
        return "relay: " + String.valueOf(message).replaceAll("\\s*\\R\\s*", "; ");
    }
}
