package relay.actors;

import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.ActorContext;

/**
 * A start, in two phases: each stage is built by the host of its node and reports Ready (the coordinator watches
 * the hosts meanwhile); then every stage is connected to all and reports Connected (the coordinator watches the
 * stages from then on). The reply holds each stage's Ready event.
 */
abstract class StartingStages extends Request {
    final Coordinator.Start start;
    final ActorContext<?> ctx;
    final Set<Integer> waiting = new TreeSet<>();

    /** Building is the first phase. */
    static Request of(Coordinator.Start start, ActorContext<?> ctx, ActorRef<StageEvent> events, CoordinatorLoad load) {
        return new Building(start, ctx, events, load);
    }

    private StartingStages(Coordinator.Start start, ActorContext<?> ctx, PipelineStages stages, CoordinatorLoad load) {
        super(stages, load);
        this.start = start;
        this.ctx = ctx;
        for (int s = 0; s < start.specs().size(); s++) waiting.add(s);
    }

    @Override
    Set<Integer> outstanding() {
        return waiting;
    }

    @Override
    void fail(String error, StageEvent.Failure kind) {
        start.replyTo().tell(new Coordinator.Gathered(List.of(), error, kind));
    }

    /** A pipeline that failed to start is not one. */
    @Override
    boolean survivesInputFailure() {
        return false;
    }

    @Override
    boolean reliesOn(org.apache.pekko.actor.Address node) {
        return hosts().stream().anyMatch(h -> h.path().address().equals(node));
    }

    List<ActorRef<StageHost.Command>> hosts() {
        return start.hostOfStage().stream().distinct().toList();
    }

    private static final class Building extends StartingStages {
        private final ActorRef<StageEvent> events;
        private final StageEvent.Ready[] ready;

        Building(Coordinator.Start start, ActorContext<?> ctx, ActorRef<StageEvent> events, CoordinatorLoad load) {
            super(start, ctx, PipelineStages.NONE, load);
            this.events = events;
            this.ready = new StageEvent.Ready[start.specs().size()];
        }

        @Override
        Request begin() {
            hosts().forEach(ctx::watch);
            Map<ActorRef<StageHost.Command>, Set<Integer>> devicesOfHost = new HashMap<>();
            for (int s = 0; s < start.specs().size(); s++) {
                devicesOfHost.computeIfAbsent(start.hostOfStage().get(s), h -> new HashSet<>()).add(start.specs().get(s).device());
            }
            for (int s = 0; s < start.specs().size(); s++) {
                ActorRef<StageHost.Command> host = start.hostOfStage().get(s);
                host.tell(new StageHost.Spawn(start.specs().get(s), events, devicesOfHost.get(host).size()));
            }
            return this;
        }

        @Override
        Request event(StageEvent e) {
            if (!(e instanceof StageEvent.Ready r)) return this;
            ready[r.stage()] = r;
            waiting.remove(r.stage());
            return waiting.isEmpty() ? new Connecting(this, ready).begin() : this;
        }

        @Override
        String what() {
            return "building the stages";
        }
    }

    private static final class Connecting extends StartingStages {
        private final StageEvent.Ready[] ready;

        Connecting(Building built, StageEvent.Ready[] ready) {
            super(built.start, built.ctx, stages(ready, built.start.hostOfStage()), built.load);
            this.ready = ready;
        }

        private static PipelineStages stages(StageEvent.Ready[] ready, List<ActorRef<StageHost.Command>> hosts) {
            return new PipelineStages(Arrays.stream(ready).map(StageEvent.Ready::ref).toList(),
                    Arrays.stream(ready).map(StageEvent.Ready::parameters).toList(), hosts,
                    Arrays.stream(ready).map(StageEvent.Ready::channel).toList());
        }

        @Override
        Request begin() {
            stages.refs().forEach(ctx::watch);
            hosts().forEach(ctx::unwatch);
            stages.tellAll(new StageCommand.Connect(stages.refs(), stages.channels()));
            return this;
        }

        @Override
        Request event(StageEvent e) {
            if (!(e instanceof StageEvent.Connected c) || !waiting.remove(c.stage()) || !waiting.isEmpty()) return this;
            start.replyTo().tell(new Coordinator.Gathered(List.<StageEvent>of(ready), null, null));
            return null;
        }

        @Override
        String what() {
            return "connecting the stages";
        }
    }
}
