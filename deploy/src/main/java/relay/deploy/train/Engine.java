package relay.deploy.train;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import relay.stages.memory.Category;
import relay.stages.train.Batch;

/** What trains: the actor pipeline or the plain loop, behind one face. */
interface Engine extends AutoCloseable {
    /** How one step went. */
    record Step(double loss, double seconds, double bubble, Map<Category, Long> memory) {}

    Step step(List<Batch> microbatches);

    /** Every parameter's values by name as the model computes with them, low-rank terms folded in (between steps). */
    Map<String, float[]> weights();

    /** The optimizer's state, "parameter/role" → values (between steps). */
    Map<String, float[]> optimizerState();

    /** Sets the optimizer's state from {@link #optimizerState()}'s values of an earlier run (before the first step). */
    void restore(Map<String, float[]> state);

    /** Writes the trace recorded so far, if the engine records one; returns whether it wrote. */
    boolean writeTrace(Path file) throws java.io.IOException;

    /** Per-device busy fractions of the last step, or an empty array. */
    double[] busy();

    String describe();

    @Override
    void close();
}
