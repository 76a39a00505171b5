package relay.actors;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import relay.transport.proto.Empty;
import relay.transport.proto.TraceSpan;

/** The Protobuf header of every {@link StageEvent}, and the event read back from it and the values after it. */
final class StageEventWire {
    private StageEventWire() {}

    static relay.transport.proto.StageEvent stageEvent(StageEvent e, Wire w) {
        var b = relay.transport.proto.StageEvent.newBuilder().setStage(e.stage());
        if (e instanceof StageEvent.Ready m) {
            b.setReady(relay.transport.proto.StageEvent.Ready.newBuilder().setRef(w.ref(m.ref())).addAllParameters(m.parameters())
                    .setChannel(m.channel()).setThreads(m.threads()));
        } else if (e instanceof StageEvent.Connected) {
            b.setConnected(Empty.getDefaultInstance());
        } else if (e instanceof StageEvent.Loss m) {
            b.setLoss(relay.transport.proto.StageEvent.Loss.newBuilder().setPosition(Wire.position(m.pos())).setLoss(m.loss()));
        } else if (e instanceof StageEvent.PassDone m) {
            b.setPassDone(relay.transport.proto.StageEvent.PassDone.newBuilder().setPosition(Wire.position(m.pos()))
                    .setNormSquared(m.normSquared()).setStaleness(m.staleness()).setBusyNanos(m.busyNanos()));
        } else if (e instanceof StageEvent.TrainableSet m) {
            b.setTrainableSet(relay.transport.proto.StageEvent.TrainableSet.newBuilder().setStep(m.step()).setTrainable(m.trainable()));
        } else if (e instanceof StageEvent.Redrawn m) {
            b.setRedrawn(relay.transport.proto.StageEvent.Redrawn.newBuilder().setStep(m.step()));
        } else if (e instanceof StageEvent.Failed m) {
            var f = relay.transport.proto.StageEvent.Failed.newBuilder().setKind(failure(m.kind())).setReason(m.reason())
                    .setHasPosition(m.pos() != null);
            if (m.pos() != null) f.setPosition(Wire.position(m.pos()));
            b.setFailed(f);
        } else if (e instanceof StageEvent.Weights m) {
            b.setWeights(relay.transport.proto.StageEvent.Tensors.newBuilder().addAllParts(Wire.partHeaders(m.parts())).setLast(m.last()));
        } else if (e instanceof StageEvent.OptimizerState m) {
            b.setOptimizerState(relay.transport.proto.StageEvent.Tensors.newBuilder().addAllParts(Wire.partHeaders(m.parts())).setLast(m.last()));
        } else if (e instanceof StageEvent.Restored m) {
            b.setRestored(relay.transport.proto.StageEvent.Restored.newBuilder().addAllHeld(m.held())
                    .setError(m.error() == null ? "" : m.error()));
        } else if (e instanceof StageEvent.Trace m) {
            var t = relay.transport.proto.StageEvent.Trace.newBuilder();
            for (TraceEvent s : m.events()) {
                t.addSpans(TraceSpan.newBuilder().setName(s.name()).setActor(s.actor()).setDevice(s.device()).setTrack(s.track())
                        .setStartMicros(s.startMicros()).setDurationMicros(s.durationMicros()).setStep(s.step()).setMicrobatch(s.microbatch()));
            }
            b.setTrace(t);
        } else if (e instanceof StageEvent.ShardTaken m) {
            b.setShardTaken(relay.transport.proto.StageEvent.ShardTaken.newBuilder().setStep(m.step()));
        } else if (e instanceof StageEvent.ShardWritten m) {
            var p = relay.transport.proto.StageEvent.ShardWritten.newBuilder().setStep(m.step()).setError(m.error() == null ? "" : m.error());
            for (relay.stages.io.CheckpointShard.File f : m.files()) {
                p.addFiles(relay.transport.proto.StageEvent.ShardFile.newBuilder().setName(f.name()).setSha256(f.sha256())
                        .addAllTensors(f.tensors()));
            }
            b.setShardWritten(p);
        } else if (e instanceof StageEvent.SnapshotTaken m) {
            b.setSnapshotTaken(relay.transport.proto.StageEvent.SnapshotTaken.newBuilder().setStep(m.step()).setSkipped(m.skipped()));
        } else if (e instanceof StageEvent.SnapshotHeld m) {
            b.setSnapshotHeld(relay.transport.proto.StageEvent.SnapshotHeld.newBuilder().setStep(m.step()).setHolder(w.ref(m.holder())));
        } else {
            throw Codecs.unknown(e);
        }
        return b.build();
    }

    static StageEvent stageEvent(relay.transport.proto.StageEvent p, ByteBuffer in, Wire w) {
        int s = p.getStage();
        return switch (p.getEventCase()) {
            case READY -> new StageEvent.Ready(s, w.ref(p.getReady().getRef()), List.copyOf(p.getReady().getParametersList()),
                    p.getReady().getChannel(), p.getReady().getThreads());
            case CONNECTED -> new StageEvent.Connected(s);
            case LOSS -> new StageEvent.Loss(s, Wire.position(p.getLoss().getPosition()), p.getLoss().getLoss());
            case PASS_DONE -> new StageEvent.PassDone(s, Wire.position(p.getPassDone().getPosition()), p.getPassDone().getNormSquared(),
                    p.getPassDone().getStaleness(), p.getPassDone().getBusyNanos());
            case TRAINABLE_SET -> new StageEvent.TrainableSet(s, p.getTrainableSet().getStep(), p.getTrainableSet().getTrainable());
            case REDRAWN -> new StageEvent.Redrawn(s, p.getRedrawn().getStep());
            case FAILED -> new StageEvent.Failed(s, p.getFailed().getHasPosition() ? Wire.position(p.getFailed().getPosition()) : null,
                    failure(p.getFailed().getKind()), p.getFailed().getReason());
            case WEIGHTS -> new StageEvent.Weights(s, Wire.readParts(p.getWeights().getPartsList(), in), p.getWeights().getLast());
            case OPTIMIZER_STATE -> new StageEvent.OptimizerState(s, Wire.readParts(p.getOptimizerState().getPartsList(), in),
                    p.getOptimizerState().getLast());
            case RESTORED -> new StageEvent.Restored(s, Set.copyOf(p.getRestored().getHeldList()),
                    p.getRestored().getError().isEmpty() ? null : p.getRestored().getError());
            case TRACE -> {
                List<TraceEvent> events = new ArrayList<>();
                for (TraceSpan t : p.getTrace().getSpansList()) {
                    events.add(new TraceEvent(t.getName(), t.getActor(), t.getDevice(), t.getTrack(), t.getStartMicros(),
                            t.getDurationMicros(), t.getStep(), t.getMicrobatch()));
                }
                yield new StageEvent.Trace(s, events);
            }
            case SHARD_TAKEN -> new StageEvent.ShardTaken(s, p.getShardTaken().getStep());
            case SHARD_WRITTEN -> new StageEvent.ShardWritten(s, p.getShardWritten().getStep(), p.getShardWritten().getFilesList().stream()
                    .map(f -> new relay.stages.io.CheckpointShard.File(f.getName(), f.getSha256(), f.getTensorsList())).toList(),
                    p.getShardWritten().getError().isEmpty() ? null : p.getShardWritten().getError());
            case SNAPSHOT_TAKEN -> new StageEvent.SnapshotTaken(s, p.getSnapshotTaken().getStep(), p.getSnapshotTaken().getSkipped());
            case SNAPSHOT_HELD -> new StageEvent.SnapshotHeld(s, p.getSnapshotHeld().getStep(), w.ref(p.getSnapshotHeld().getHolder()));
            case EVENT_NOT_SET -> throw new IllegalArgumentException("a stage event without an event");
        };
    }

    static relay.transport.proto.StageEvent.Failed.Kind failure(StageEvent.Failure f) {
        return switch (f) {
            case FAULT -> relay.transport.proto.StageEvent.Failed.Kind.FAULT;
            case DIVERGED -> relay.transport.proto.StageEvent.Failed.Kind.DIVERGED;
            case INPUT -> relay.transport.proto.StageEvent.Failed.Kind.INPUT;
            case PROTOCOL -> relay.transport.proto.StageEvent.Failed.Kind.PROTOCOL;
            case NODE_LOST -> relay.transport.proto.StageEvent.Failed.Kind.NODE_LOST;
        };
    }

    static StageEvent.Failure failure(relay.transport.proto.StageEvent.Failed.Kind k) {
        return switch (k) {
            case FAULT -> StageEvent.Failure.FAULT;
            case DIVERGED -> StageEvent.Failure.DIVERGED;
            case INPUT -> StageEvent.Failure.INPUT;
            case PROTOCOL -> StageEvent.Failure.PROTOCOL;
            case NODE_LOST -> StageEvent.Failure.NODE_LOST;
            case UNRECOGNIZED -> throw new IllegalArgumentException("unknown failure kind");
        };
    }
}
