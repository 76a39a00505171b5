package relay.actors;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * The pipeline's stages as the coordinator knows them once each is built: its reference, the names of what it
 * keeps state of (where a checkpoint's optimizer state belongs), the host of its node and its node's tensor
 * channel ("" in one JVM), by stage. {@link #NONE} before then.
 */
record PipelineStages(List<ActorRef<StageCommand>> refs, List<List<String>> stateOwners, List<ActorRef<StageHost.Command>> hosts,
                      List<String> channels) {
    static final PipelineStages NONE = new PipelineStages(List.of(), List.of(), List.of(), List.of());

    PipelineStages {
        refs = List.copyOf(refs);
        stateOwners = List.copyOf(stateOwners);
        hosts = List.copyOf(hosts);
        channels = List.copyOf(channels);
    }

    /** The tensor channel of each host's node. */
    Map<ActorRef<StageHost.Command>, String> channelOfHost() {
        Map<ActorRef<StageHost.Command>, String> out = new HashMap<>();
        for (int s = 0; s < hosts.size(); s++) out.putIfAbsent(hosts.get(s), channels.get(s));
        return out;
    }

    /**
     * Where each stage's snapshots are held, by stage: its own node's host, and the next node's in the ring of the
     * pipeline's nodes (in stage order), so that losing any one node loses no snapshot.
     */
    List<List<ActorRef<StageHost.Command>>> holders() {
        List<ActorRef<StageHost.Command>> ring = hosts.stream().distinct().toList();
        List<List<ActorRef<StageHost.Command>>> out = new ArrayList<>();
        for (ActorRef<StageHost.Command> own : hosts) {
            out.add(ring.size() == 1 ? List.of(own) : List.of(own, ring.get((ring.indexOf(own) + 1) % ring.size())));
        }
        return out;
    }

    int size() {
        return refs.size();
    }

    ActorRef<StageCommand> get(int stage) {
        return refs.get(stage);
    }

    void tellAll(StageCommand c) {
        refs.forEach(s -> s.tell(c));
    }
}
