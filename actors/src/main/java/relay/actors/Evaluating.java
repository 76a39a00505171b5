package relay.actors;

import java.time.Duration;
import java.util.Set;

/** A forward-only pass with the current weights: the head reports each batch's loss; the step does not advance. */
final class Evaluating extends Request {
    private final Coordinator.Evaluate evaluate;
    private final Passes passes;
    private PassTally tally;

    Evaluating(Coordinator.Evaluate evaluate, PipelineStages stages, Passes passes, CoordinatorLoad load) {
        super(stages, load);
        this.evaluate = evaluate;
        this.passes = passes;
    }

    @Override
    Request begin() {
        tally = passes.start(stages, evaluate.batches(), Pass.EVAL, 1f, load);
        return this;
    }

    @Override
    Request event(StageEvent e) {
        if (!tally.take(e)) return this;
        evaluate.replyTo().tell(tally.evaluationResult(passes.step(), load));
        return null;
    }

    @Override
    String what() {
        return "the evaluation before step " + passes.step();
    }

    @Override
    Set<Integer> outstanding() {
        return tally.waiting();
    }

    @Override
    void fail(String error, StageEvent.Failure kind) {
        evaluate.replyTo().tell(PassTally.failed(passes.step(), new double[0], load, error, kind));
    }

    @Override
    Duration deadline(PipelineConfig config) {
        return config.stepTimeout();
    }
}
