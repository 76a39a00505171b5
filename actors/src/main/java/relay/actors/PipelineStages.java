package relay.actors;

import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * The pipeline's stages as the coordinator knows them once each is built: its reference, and the names of
 * what it keeps state of (where a checkpoint's optimizer state belongs), by stage. {@link #NONE} before then.
 */
record PipelineStages(List<ActorRef<StageCommand>> refs, List<List<String>> stateOwners) {
    static final PipelineStages NONE = new PipelineStages(List.of(), List.of());

    PipelineStages {
        refs = List.copyOf(refs);
        stateOwners = List.copyOf(stateOwners);
    }

    int size() {
        return refs.size();
    }

    ActorRef<StageCommand> get(int stage) {
        return refs.get(stage);
    }

    ActorRef<StageCommand> embedding() {
        return refs.get(0);
    }

    ActorRef<StageCommand> head() {
        return refs.get(refs.size() - 1);
    }

    void tellAll(StageCommand c) {
        refs.forEach(s -> s.tell(c));
    }
}
