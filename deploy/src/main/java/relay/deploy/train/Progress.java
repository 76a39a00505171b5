package relay.deploy.train;

import java.io.PrintStream;
import java.util.Locale;

/** The progress of a run on one line: step, loss, validation loss, tokens/s and time left. */
final class Progress {
    private final int first;
    private final int total;
    private final PrintStream out;
    private final boolean terminal = System.console() != null;
    private final long start = System.nanoTime();
    private int lastPrinted;

    /** Progress from step {@code first} (a resumed run's) to {@code total}. */
    Progress(int first, int total, PrintStream out) {
        this.first = first;
        this.lastPrinted = first;
        this.total = total;
        this.out = out;
    }

    void update(int step, double loss, double val, double tokensPerSecond) {
        double elapsed = (System.nanoTime() - start) / 1e9, eta = elapsed / (step - first) * (total - step);
        String line = String.format(Locale.ROOT, "step %d/%d  loss %.3f  val %s  %.0f tok/s  elapsed %s  eta %s", step, total,
                loss, Double.isNaN(val) ? "-" : String.format(Locale.ROOT, "%.3f", val), tokensPerSecond, clock(elapsed), clock(eta));
        if (terminal) {
            out.print("\r" + line + "   ");
            out.flush();
        } else if (step == total || step - lastPrinted >= Math.max(1, total / 20)) {
            out.println(line);
            lastPrinted = step;
        }
    }

    void done() {
        if (terminal) out.println();
    }

    private static String clock(double seconds) {
        long s = Math.round(seconds);
        return String.format(Locale.ROOT, "%d:%02d", s / 60, s % 60);
    }
}
