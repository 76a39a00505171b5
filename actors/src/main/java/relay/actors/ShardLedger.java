package relay.actors;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.stream.Collectors;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * Checkpoint shards as the stages report them written, and who waits for each checkpoint's. It is kept outside
 * the one-request-at-a-time order: steps go on while shards are written. Whoever waits for checkpoint N is
 * answered once every stage is done with its own shard: all written, or one could not be — its write failed,
 * or its stage is gone (a lost node) before it was written. Waiting for the others' ends too lets the caller
 * clear an incomplete checkpoint without a stage still writing into it. A copy taken before a later step
 * failed is still written: the checkpoint is of the step boundary it was taken at.
 */
final class ShardLedger {
    private final Placement placement;
    private final Map<Long, List<StageEvent.ShardWritten>> written = new HashMap<>();
    private final Map<Long, ActorRef<Coordinator.Gathered>> awaiting = new HashMap<>();
    private final Set<Integer> gone = new HashSet<>();
    /** Why the pipeline stopped when its stages went: what a checkpoint they never wrote is told. */
    private String goneBecause;

    ShardLedger(Placement placement) {
        this.placement = placement;
    }

    void written(StageEvent.ShardWritten w) {
        written.computeIfAbsent(w.step(), k -> new ArrayList<>()).add(w);
        answer(w.step());
    }

    void await(long step, ActorRef<Coordinator.Gathered> replyTo) {
        awaiting.put(step, replyTo);
        answer(step);
    }

    /** These stages are gone and will write nothing more: whoever waits only for them is answered. */
    void gone(List<Integer> stages, String why) {
        if (stages.isEmpty()) return;
        gone.addAll(stages);
        goneBecause = why;
        List.copyOf(awaiting.keySet()).forEach(this::answer);
    }

    private void answer(long step) {
        ActorRef<Coordinator.Gathered> to = awaiting.get(step);
        if (to == null) return;
        List<StageEvent.ShardWritten> shards = written.getOrDefault(step, List.of());
        Set<Integer> reported = shards.stream().map(StageEvent::stage).collect(Collectors.toSet());
        String error = null;
        StageEvent.Failure failure = StageEvent.Failure.NODE_LOST;
        for (int s = 0; s < placement.actors(); s++) {
            if (reported.contains(s)) continue;
            if (!gone.contains(s)) return;
            if (error == null) error = placement.stageName(s) + " is gone (" + goneBecause + ") before it wrote its shard";
        }
        if (error == null) {
            error = shards.stream().map(StageEvent.ShardWritten::error).filter(Objects::nonNull).findFirst().orElse(null);
            failure = StageEvent.Failure.FAULT;
        }
        awaiting.remove(step);
        written.remove(step);
        to.tell(error == null ? new Coordinator.Gathered(List.<StageEvent>copyOf(shards), null, null) : new Coordinator.Gathered(List.of(), error, failure));
    }
}
