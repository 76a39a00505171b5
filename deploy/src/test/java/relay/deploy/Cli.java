package relay.deploy;

import java.io.PrintWriter;
import java.io.StringWriter;
import picocli.CommandLine;

/** Runs the relay command line in process, as main would, with its error stream captured. */
final class Cli {
    private Cli() {}

    static int run(StringWriter err, String... args) {
        CommandLine cl = Relay.commandLine();
        cl.setErr(new PrintWriter(err, true));
        return cl.execute(args);
    }
}
