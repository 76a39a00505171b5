package relay.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine;

/** Runs the relay command line in process, as main would, with its error stream captured. */
final class Cli {
    private Cli() {}

    static int run(StringWriter err, String... args) {
        CommandLine cl = Relay.commandLine();
        cl.setErr(new PrintWriter(err, true));
        return cl.execute(args);
    }

    /** Runs a command that must end with {@code code}; returns what it printed, standard output then its errors. */
    static String output(int code, String... args) {
        PrintStream stdout = System.out;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
        StringWriter err = new StringWriter();
        try {
            assertEquals(code, run(err, args), err::toString);
        } finally {
            System.setOut(stdout);
        }
        return captured.toString(StandardCharsets.UTF_8) + err;
    }

    /** The loss relay eval printed. */
    static double loss(String evalOutput) {
        Matcher m = Pattern.compile("loss (\\d+\\.\\d+)").matcher(evalOutput);
        assertTrue(m.find(), evalOutput);
        return Double.parseDouble(m.group(1));
    }
}
