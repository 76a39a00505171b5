package relay.actors;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import org.apache.pekko.actor.Address;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * What the end of an actor the coordinator watches means. A host's: its node was lost while its stages were
 * being built. A stage's: its node was lost (downed after it became unreachable, or its JVM ended), and with
 * it every stage it held; in one JVM, only that the stage stopped. A node downed says the same before its
 * actors' ends reach the coordinator.
 *
 * @param stages the stages gone (none for a host)
 */
record NodeLoss(String reason, List<Integer> stages) {

    static NodeLoss of(ActorRef<?> ended, PipelineStages pipeline, Placement placement) {
        Address node = ended.path().address();
        int stage = pipeline.refs().indexOf(ended);
        if (stage < 0) return new NodeLoss("node " + Nodes.hostPort(node) + " was lost while its stages were being built", List.of());
        if (!node.hasGlobalScope()) return new NodeLoss(placement.stageName(stage) + " stopped", List.of(stage));
        return of(node, pipeline, placement);
    }

    /** A node downed (its process gone, or cut off): every stage it held; none if it held none of this pipeline's. */
    static NodeLoss of(Address node, PipelineStages pipeline, Placement placement) {
        List<Integer> lost = new ArrayList<>();
        for (int s = 0; s < pipeline.size(); s++) if (pipeline.get(s).path().address().equals(node)) lost.add(s);
        return new NodeLoss("node " + Nodes.hostPort(node) + " was lost, and with it "
                + lost.stream().map(placement::stageName).collect(Collectors.joining(", ")), List.copyOf(lost));
    }

    boolean ofHost() {
        return stages.isEmpty();
    }
}
