package relay.deploy.train;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * The coordinator's word on each worker it refuses (its index is a live node's): a line on the console and in
 * history.log. A refusal comes from the cluster's actors at any time, the first ones perhaps while the
 * coordinator waits for its workers, before the run has its directory: those reach history.log once it has one.
 */
final class RefusedNodes implements Consumer<String> {
    private final PrintStream out;
    private final List<String> early = new ArrayList<>();
    private RunDirectory dir;

    RefusedNodes(PrintStream out) {
        this.out = out;
    }

    @Override
    public synchronized void accept(String refusal) {
        String line = refusal + "; give it another --index";
        out.println(line);
        if (dir == null) early.add(line);
        else dir.history(line, out);
    }

    /** The run has its directory: the refusals so far, and those to come, go into its history. */
    synchronized void recordIn(RunDirectory dir) {
        this.dir = dir;
        early.forEach(line -> dir.history(line, out));
        early.clear();
    }
}
