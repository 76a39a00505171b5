package relay.deploy.train;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * What a run is told and goes on after — a corrupt checkpoint refused for the one before, a worker refused because its
 * index is a live node's: a line on the console at once and in history.log. Some come before the run has its
 * directory (a checkpoint is checked first; a refusal comes from the cluster's actors at any time, the first ones
 * perhaps while the coordinator waits for its workers): those reach history.log once it has one.
 */
final class RunNotices implements Consumer<String> {
    private final PrintStream out;
    private final List<String> early = new ArrayList<>();
    private RunDirectory dir;

    RunNotices(PrintStream out) {
        this.out = out;
    }

    @Override
    public synchronized void accept(String line) {
        out.println(line);
        if (dir == null) early.add(line);
        else dir.history(line, out);
    }

    /** The run has its directory: the lines so far, and those to come, go into its history. */
    synchronized void recordIn(RunDirectory dir) {
        this.dir = dir;
        early.forEach(line -> dir.history(line, out));
        early.clear();
    }
}
