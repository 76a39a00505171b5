package relay.actors;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import relay.transport.proto.CoordinatorCommand;

/** The Protobuf headers of the coordinator's commands and replies, and what is read back from them and the values after them. */
final class CoordinatorWire {
    private CoordinatorWire() {}

    static List<TensorPart> restoreParts(Coordinator.Restore r) {
        return TensorPart.split(r.values(), Integer.MAX_VALUE).get(0);
    }


    static CoordinatorCommand coordinatorCommand(Coordinator.Command c, Wire w) {
        var b = CoordinatorCommand.newBuilder();
        if (c instanceof Coordinator.Start m) {
            var p = CoordinatorCommand.Start.newBuilder().setReplyTo(w.ref(m.replyTo()));
            m.specs().forEach(s -> p.addSpecs(Wire.spec(s)));
            m.hostOfStage().forEach(h -> p.addHostOfStage(w.ref(h)));
            b.setStart(p);
        } else if (c instanceof Coordinator.RunStep m) {
            b.setRunStep(runStep(m.microbatches(), m.replyTo(), w).toBuilder().setSnapshotOf(m.snapshotOf()));
        } else if (c instanceof Coordinator.Evaluate m) {
            b.setEvaluate(runStep(m.batches(), m.replyTo(), w));
        } else if (c instanceof Coordinator.Collect m) {
            b.setCollect(CoordinatorCommand.Collect.newBuilder().setReplyTo(w.ref(m.replyTo())).setWhat(switch (m.what()) {
                case WEIGHTS -> CoordinatorCommand.Collect.What.WEIGHTS;
                case OPTIMIZER_STATE -> CoordinatorCommand.Collect.What.OPTIMIZER_STATE;
                case TRACE -> CoordinatorCommand.Collect.What.TRACE;
            }));
        } else if (c instanceof Coordinator.Restore m) {
            b.setRestore(CoordinatorCommand.Restore.newBuilder().setReplyTo(w.ref(m.replyTo())).addAllParts(Wire.partHeaders(restoreParts(m))));
        } else if (c instanceof Coordinator.WriteShards m) {
            b.setWriteShards(CoordinatorCommand.Shards.newBuilder().setStep(m.step()).setDirectory(m.directory()).setReplyTo(w.ref(m.replyTo())));
        } else if (c instanceof Coordinator.AwaitShards m) {
            b.setAwaitShards(CoordinatorCommand.Shards.newBuilder().setStep(m.step()).setReplyTo(w.ref(m.replyTo())));
        } else if (c instanceof Coordinator.FindSnapshot m) {
            b.setFindSnapshot(CoordinatorCommand.Shards.newBuilder().setReplyTo(w.ref(m.replyTo())));
        } else if (c instanceof Coordinator.RestoreSnapshot m) {
            var r = CoordinatorCommand.RestoreSnapshot.newBuilder().setReplyTo(w.ref(m.replyTo()));
            m.point().forEach(h -> r.addPoint(StageEventWire.stageEvent(h, w)));
            b.setRestoreSnapshot(r);
        } else {
            throw Codecs.unknown(c);
        }
        return b.build();
    }

    private static CoordinatorCommand.RunStep runStep(List<relay.stages.train.Batch> batches, ActorRef<?> replyTo, Wire w) {
        var p = CoordinatorCommand.RunStep.newBuilder().setReplyTo(w.ref(replyTo));
        batches.forEach(x -> p.addMicrobatches(Wire.batch(x)));
        return p.build();
    }

    static Coordinator.Command coordinatorCommand(CoordinatorCommand p, ByteBuffer in, Wire w) {
        return switch (p.getCommandCase()) {
            case START -> new Coordinator.Start(p.getStart().getSpecsList().stream().map(Wire::spec).toList(),
                    p.getStart().getHostOfStageList().stream().<ActorRef<StageHost.Command>>map(w::ref).toList(), w.ref(p.getStart().getReplyTo()));
            case RUN_STEP -> new Coordinator.RunStep(p.getRunStep().getMicrobatchesList().stream().map(Wire::batch).toList(),
                    p.getRunStep().getSnapshotOf(), w.ref(p.getRunStep().getReplyTo()));
            case EVALUATE -> new Coordinator.Evaluate(p.getEvaluate().getMicrobatchesList().stream().map(Wire::batch).toList(),
                    w.ref(p.getEvaluate().getReplyTo()));
            case COLLECT -> new Coordinator.Collect(switch (p.getCollect().getWhat()) {
                case WEIGHTS -> Coordinator.What.WEIGHTS;
                case OPTIMIZER_STATE -> Coordinator.What.OPTIMIZER_STATE;
                case TRACE -> Coordinator.What.TRACE;
                case UNRECOGNIZED -> throw new IllegalArgumentException("unknown collection " + p.getCollect().getWhatValue());
            }, w.ref(p.getCollect().getReplyTo()));
            case RESTORE -> new Coordinator.Restore(TensorPart.assembleValues(Wire.readParts(p.getRestore().getPartsList(), in)),
                    w.ref(p.getRestore().getReplyTo()));
            case WRITE_SHARDS -> new Coordinator.WriteShards(p.getWriteShards().getStep(), p.getWriteShards().getDirectory(),
                    w.ref(p.getWriteShards().getReplyTo()));
            case AWAIT_SHARDS -> new Coordinator.AwaitShards(p.getAwaitShards().getStep(), w.ref(p.getAwaitShards().getReplyTo()));
            case FIND_SNAPSHOT -> new Coordinator.FindSnapshot(w.ref(p.getFindSnapshot().getReplyTo()));
            case RESTORE_SNAPSHOT -> new Coordinator.RestoreSnapshot(p.getRestoreSnapshot().getPointList().stream()
                    .map(e -> (StageEvent.SnapshotHeld) StageEventWire.stageEvent(e, in, w)).toList(), w.ref(p.getRestoreSnapshot().getReplyTo()));
            case COMMAND_NOT_SET -> throw new IllegalArgumentException("a coordinator command without a command");
        };
    }

    static relay.transport.proto.StepResult stepResult(Coordinator.StepResult r) {
        var b = relay.transport.proto.StepResult.newBuilder().setStep(r.step()).setLoss(r.loss()).setWallNanos(r.wallNanos())
                .setBubble(r.bubble()).setStaleness(r.staleness()).setGradNorm(r.gradNorm()).setCoordinatorMessages(r.coordinatorMessages())
                .setCoordinatorNanos(r.coordinatorNanos()).setError(r.error() == null ? "" : r.error());
        for (double l : r.losses()) b.addLosses(l);
        for (long n : r.busyNanos()) b.addBusyNanos(n);
        if (r.failure() != null) b.setFailure(StageEventWire.failure(r.failure()));
        return b.build();
    }

    static Coordinator.StepResult stepResult(relay.transport.proto.StepResult p) {
        boolean ok = p.getError().isEmpty();
        return new Coordinator.StepResult(p.getStep(), p.getLoss(), p.getLossesList().stream().mapToDouble(Double::doubleValue).toArray(),
                p.getWallNanos(), p.getBusyNanosList().stream().mapToLong(Long::longValue).toArray(), p.getBubble(), p.getStaleness(),
                p.getGradNorm(), p.getCoordinatorMessages(), p.getCoordinatorNanos(), ok ? null : p.getError(), ok ? null : StageEventWire.failure(p.getFailure()));
    }

    static relay.transport.proto.Gathered gathered(Coordinator.Gathered g, Wire w) {
        var b = relay.transport.proto.Gathered.newBuilder().setError(g.error() == null ? "" : g.error());
        g.events().forEach(e -> b.addEvents(StageEventWire.stageEvent(e, w)));
        if (g.failure() != null) b.setFailure(StageEventWire.failure(g.failure()));
        return b.build();
    }

    static Coordinator.Gathered gathered(relay.transport.proto.Gathered p, ByteBuffer in, Wire w) {
        boolean ok = p.getError().isEmpty();
        List<StageEvent> events = new ArrayList<>();
        for (var e : p.getEventsList()) events.add(StageEventWire.stageEvent(e, in, w));
        return new Coordinator.Gathered(events, ok ? null : p.getError(), ok ? null : StageEventWire.failure(p.getFailure()));
    }
}
