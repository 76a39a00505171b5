package relay.actors;

import java.util.List;
import relay.stages.model.LmHead;
import relay.stages.train.Batch;

/**
 * The run's passes: the step the next one belongs to, and each pass started — every microbatch's tokens to
 * the embedding and its targets to the head (each replica's share of its rows to that replica's), the pass numbered so that two never look alike. Nothing else
 * of a microbatch goes through the coordinator: the stages follow their devices' plans on their own.
 */
final class Passes {
    private final Placement placement;
    private long step;
    private long started;

    Passes(Placement placement, long firstStep) {
        this.placement = placement;
        this.step = firstStep;
    }

    long step() {
        return step;
    }

    void stepDone() {
        step++;
    }

    PassTally start(PipelineStages stages, List<Batch> microbatches, Pass pass, float clip, CoordinatorLoad load) {
        long begun = System.nanoTime();
        long id = ++started;
        Position first = null;
        int replicas = placement.replicas();
        int counted = microbatches.stream().mapToInt(b -> LmHead.counted(b.targets())).sum();
        for (int j = 0; j < microbatches.size(); j++) {
            Batch whole = microbatches.get(j);
            // Each replica takes its share of the microbatch's rows: a run's tokens do not depend on the replicas.
            int share = whole.batch() / replicas;
            for (int r = 0; r < replicas; r++) {
                Batch b = replicas == 1 ? whole : whole.rows(r * share, (r + 1) * share);
                Position pos = new Position(step, pass, id, j, microbatches.size(), b.batch(), b.seq(), clip);
                if (first == null) first = pos;
                stages.get(placement.actor(r, 0)).tell(new StageCommand.Tokens(pos, b.inputs(), b.positions()));
                stages.get(placement.actor(r, placement.stages() - 1)).tell(new StageCommand.Targets(pos, b.targets(), counted));
                load.sent(2);
            }
        }
        return new PassTally(first, placement, begun);
    }
}
