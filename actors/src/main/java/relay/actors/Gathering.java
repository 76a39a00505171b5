package relay.actors;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;
import org.apache.pekko.actor.typed.ActorRef;

/** Every stage's answer to what it was asked: one event each, or parts until the one marked last. */
abstract class Gathering extends Request {
    private final ActorRef<Coordinator.Gathered> replyTo;
    private final Set<Integer> waiting = new TreeSet<>();
    private final List<List<StageEvent>> answers = new ArrayList<>();

    Gathering(PipelineStages stages, CoordinatorLoad load, ActorRef<Coordinator.Gathered> replyTo) {
        super(stages, load);
        this.replyTo = replyTo;
        for (int s = 0; s < stages.size(); s++) {
            waiting.add(s);
            answers.add(new ArrayList<>());
        }
    }

    /** Asks the stages. */
    abstract void ask();

    abstract boolean answers(StageEvent e);

    /** Why the answers do not do, or null. */
    String check(List<StageEvent> all) {
        return null;
    }

    @Override
    Request begin() {
        ask();
        return this;
    }

    @Override
    Request event(StageEvent e) {
        if (!answers(e) || !waiting.contains(e.stage())) return this;
        answers.get(e.stage()).add(e);
        if (whole(e)) waiting.remove(e.stage());
        if (!waiting.isEmpty()) return this;
        List<StageEvent> all = answers.stream().flatMap(List::stream).toList();
        String error = check(all);
        replyTo.tell(new Coordinator.Gathered(error == null ? all : List.of(), error, error == null ? null : StageEvent.Failure.INPUT));
        return null;
    }

    /** Whether an event is a stage's whole answer: the last of its parts, for weights and optimizer state. */
    private static boolean whole(StageEvent e) {
        return e instanceof StageEvent.Weights w ? w.last() : !(e instanceof StageEvent.OptimizerState o) || o.last();
    }

    @Override
    Set<Integer> outstanding() {
        return waiting;
    }

    @Override
    void fail(String error, StageEvent.Failure kind) {
        replyTo.tell(new Coordinator.Gathered(List.of(), error, kind));
    }

    /** Every stage's weights, optimizer state or trace (between steps). */
    static final class Collecting extends Gathering {
        private final Coordinator.What what;

        Collecting(Coordinator.Collect c, PipelineStages stages, CoordinatorLoad load) {
            super(stages, load, c.replyTo());
            this.what = c.what();
        }

        @Override
        void ask() {
            stages.tellAll(switch (what) {
                case WEIGHTS -> new StageCommand.CollectWeights();
                case OPTIMIZER_STATE -> new StageCommand.CollectState();
                case TRACE -> new StageCommand.CollectTrace();
            });
        }

        @Override
        boolean answers(StageEvent e) {
            return switch (what) {
                case WEIGHTS -> e instanceof StageEvent.Weights;
                case OPTIMIZER_STATE -> e instanceof StageEvent.OptimizerState;
                case TRACE -> e instanceof StageEvent.Trace;
            };
        }

        @Override
        String what() {
            return "collecting the stages' " + what.name().toLowerCase(Locale.ROOT).replace('_', ' ');
        }
    }

    /** Each stage takes its copy for a checkpoint and reports so; its shard is written after the reply ({@link ShardLedger}). */
    static final class TakingShards extends Gathering {
        private final Coordinator.WriteShards write;

        TakingShards(Coordinator.WriteShards write, PipelineStages stages, CoordinatorLoad load) {
            super(stages, load, write.replyTo());
            this.write = write;
        }

        @Override
        void ask() {
            stages.tellAll(new StageCommand.WriteShard(write.step(), write.directory()));
        }

        @Override
        boolean answers(StageEvent e) {
            return e instanceof StageEvent.ShardTaken t && t.step() == write.step();
        }

        @Override
        String what() {
            return "taking the stages' copies for checkpoint " + write.step();
        }
    }

    /**
     * Each stage's holder sends it that stage's snapshot; a head whose token table is tied also takes the table
     * from the embedding's. Each stage reports {@link StageEvent.Restored} once it has all.
     */
    static final class RestoringSnapshot extends Gathering {
        private final Coordinator.RestoreSnapshot restore;
        private final ActorRef<StageEvent> events;

        RestoringSnapshot(Coordinator.RestoreSnapshot restore, PipelineStages stages, CoordinatorLoad load, ActorRef<StageEvent> events) {
            super(stages, load, restore.replyTo());
            this.restore = restore;
            this.events = events;
        }

        @Override
        void ask() {
            int head = stages.size() - 1;
            List<String> tied = stages.stateOwners().get(0).stream().filter(stages.stateOwners().get(head)::contains).toList();
            for (StageEvent.SnapshotHeld h : restore.point()) {
                int s = h.stage(), sources = s == head && !tied.isEmpty() ? 2 : 1;
                h.holder().tell(new StageHost.SendSnapshot(s, h.step(), List.of(), stages.get(s), stages.channels().get(s), sources, events));
            }
            if (tied.isEmpty()) return;
            StageEvent.SnapshotHeld embedding = restore.point().get(0);
            embedding.holder().tell(new StageHost.SendSnapshot(0, embedding.step(), tied, stages.get(head), stages.channels().get(head), 2, events));
        }

        @Override
        boolean answers(StageEvent e) {
            return e instanceof StageEvent.Restored;
        }

        @Override
        String check(List<StageEvent> all) {
            for (StageEvent e : all) if (((StageEvent.Restored) e).error() != null) return "snapshot: " + ((StageEvent.Restored) e).error();
            return null;
        }

        @Override
        boolean reliesOn(org.apache.pekko.actor.Address node) {
            return restore.point().stream().anyMatch(h -> h.holder().path().address().equals(node));
        }

        @Override
        String what() {
            return "restoring the stages from the snapshot of step " + restore.point().get(0).step();
        }
    }
}
