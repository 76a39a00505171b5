package relay.actors;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * A step, in phases: the stages take their copies for a snapshot of the state the step starts from when it is
 * asked for, and the blocks take LISA's draw and RSO's redraw when the step makes one; then a norm-only pass runs
 * when clipping by global norm, then the updating pass, whose end is the step's. The whole step has the step timeout.
 */
abstract class Stepping extends Request {
    final Coordinator.RunStep run;
    final Passes passes;
    final NormClip clip;

    /** The step's first phase, the draws: it goes straight on to the first pass when the step makes none. */
    static Request of(Coordinator.RunStep run, PipelineStages stages, Passes passes, BlockDraws draws, SnapshotLedger snapshots,
                      PipelineConfig config, CoordinatorLoad load) {
        return new Drawing(run, stages, passes, new NormClip(config.settings().clipping()), load, draws, snapshots);
    }

    /** Every stage takes its copy for the snapshot of step {@code step}, before the step's draws (they may drop a block's state). */
    private static void snapshot(long step, PipelineStages stages, SnapshotLedger ledger) {
        List<List<ActorRef<StageHost.Command>>> holders = stages.holders();
        Map<ActorRef<StageHost.Command>, String> channel = stages.channelOfHost();
        long keepFrom = ledger.whole();
        ledger.taking(step, holders);
        for (int s = 0; s < stages.size(); s++) {
            stages.get(s).tell(new StageCommand.TakeSnapshot(step, keepFrom, holders.get(s), holders.get(s).stream().map(channel::get).toList()));
        }
    }

    private Stepping(Coordinator.RunStep run, PipelineStages stages, Passes passes, NormClip clip, CoordinatorLoad load) {
        super(stages, load);
        this.run = run;
        this.passes = passes;
        this.clip = clip;
    }

    /** The next phase of the same step. */
    private Stepping(Stepping step) {
        this(step.run, step.stages, step.passes, step.clip, step.load);
    }

    @Override
    Duration deadline(PipelineConfig config) {
        return config.stepTimeout();
    }

    void replyFailed(double[] losses, String error, StageEvent.Failure kind) {
        run.replyTo().tell(PassTally.failed(passes.step(), losses, load, error, kind));
    }

    /**
     * The stages take their copies for the snapshot asked for, and the blocks take the step's LISA and RSO draws; the
     * first pass starts once every stage has acknowledged both.
     */
    private static final class Drawing extends Stepping {
        private final BlockDraws draws;
        private final SnapshotLedger snapshots;
        private final Set<Integer> waiting = new java.util.TreeSet<>(), copying = new java.util.TreeSet<>();

        Drawing(Coordinator.RunStep run, PipelineStages stages, Passes passes, NormClip clip, CoordinatorLoad load, BlockDraws draws,
                SnapshotLedger snapshots) {
            super(run, stages, passes, clip, load);
            this.draws = draws;
            this.snapshots = snapshots;
        }

        @Override
        Request begin() {
            if (run.snapshotOf() > 0) {
                snapshot(run.snapshotOf(), stages, snapshots);
                for (int s = 0; s < stages.size(); s++) copying.add(s);
            }
            waiting.addAll(draws.send(passes.step(), stages, load));
            return waiting.isEmpty() && copying.isEmpty() ? firstPass() : this;
        }

        private Request firstPass() {
            return new StepPass(this, clip.firstPass(), 1f).begin();
        }

        @Override
        Request event(StageEvent e) {
            if (e instanceof StageEvent.SnapshotTaken t && t.step() == run.snapshotOf()) copying.remove(t.stage());
            else if (BlockDraws.taken(e, passes.step())) waiting.remove(e.stage());
            else return this;
            return waiting.isEmpty() && copying.isEmpty() ? firstPass() : this;
        }

        @Override
        String what() {
            List<String> of = new java.util.ArrayList<>();
            if (!copying.isEmpty()) of.add("the stages' copies for the snapshot of step " + run.snapshotOf());
            if (!waiting.isEmpty()) of.add(draws.what());
            return "step " + passes.step() + " (" + String.join(", ", of) + ")";
        }

        @Override
        Set<Integer> outstanding() {
            Set<Integer> all = new java.util.TreeSet<>(waiting);
            all.addAll(copying);
            return all;
        }

        @Override
        void fail(String error, StageEvent.Failure kind) {
            replyFailed(new double[0], error, kind);
        }
    }

    /** One of the step's passes: the norm pass hands on to the updating pass, which replies. */
    private static final class StepPass extends Stepping {
        private final Pass pass;
        private final float scale;
        private PassTally tally;

        StepPass(Stepping step, Pass pass, float scale) {
            super(step);
            this.pass = pass;
            this.scale = scale;
        }

        @Override
        Request begin() {
            tally = passes.start(stages, run.microbatches(), pass, scale, load);
            return this;
        }

        @Override
        Request event(StageEvent e) {
            if (!tally.take(e)) return this;
            if (pass == Pass.NORM) return new StepPass(this, Pass.TRAIN, clip.measured(tally.normSquared())).begin();
            Coordinator.StepResult r = tally.stepResult(passes.step(), clip.norm(), load);
            passes.stepDone();
            run.replyTo().tell(r);
            return null;
        }

        @Override
        String what() {
            return "step " + passes.step() + (pass == Pass.NORM ? " (norm pass)" : "");
        }

        @Override
        Set<Integer> outstanding() {
            return tally.waiting();
        }

        @Override
        void fail(String error, StageEvent.Failure kind) {
            replyFailed(tally.losses(), error, kind);
        }
    }
}
