package relay.actors;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageLite;
import com.google.protobuf.Parser;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import relay.stages.memory.Category;
import relay.transport.Frames;
import relay.transport.MessageCodec;
import relay.transport.MessageCodecs;
import relay.transport.TensorPayload;
import relay.transport.WireMessage;
import relay.transport.proto.Activation;
import relay.transport.proto.CoordinatorCommand;
import relay.transport.proto.Empty;
import relay.transport.proto.HostCommand;
import relay.transport.proto.TensorData;
import relay.transport.proto.TiedTensor;
import relay.transport.proto.TokenBatch;
import relay.transport.proto.TraceSpan;

/**
 * The wire form of every protocol of the actors: one codec per protocol (stage commands, stage events,
 * coordinator commands and replies, host commands and replies). Each message is a Protobuf header and then
 * the raw values of the tensors and tensor parts it announces ({@link Frames}), so an activation goes from
 * device memory to the transport's buffer in one copy. Decoding switches over the oneof of the protocol's
 * header, so the compiler checks that every case is read; encoding covers every record of the sealed
 * protocol, which the round-trip tests check for each permitted type.
 */
public final class Codecs implements MessageCodecs {

    @Override
    public List<MessageCodec<?>> codecs(ActorSystem<?> system) {
        Wire w = new Wire(system);
        return List.of(
                new Protocol<>("s", StageCommand.class, relay.transport.proto.StageCommand.parser(), c -> stageCommand(c, w),
                        Codecs::raw, Codecs::writeParts, (p, in) -> stageCommand(p, in, w)),
                new Protocol<>("e", StageEvent.class, relay.transport.proto.StageEvent.parser(), e -> stageEvent(e, w),
                        Codecs::raw, Codecs::writeParts, (p, in) -> stageEvent(p, in, w)),
                new Protocol<>("c", Coordinator.Command.class, CoordinatorCommand.parser(), c -> coordinatorCommand(c, w),
                        Codecs::raw, Codecs::writeParts, (p, in) -> coordinatorCommand(p, in, w)),
                new Protocol<>("r", Coordinator.StepResult.class, relay.transport.proto.StepResult.parser(), Codecs::stepResult,
                        r -> 0L, (r, out) -> { }, (p, in) -> stepResult(p)),
                new Protocol<>("g", Coordinator.Gathered.class, relay.transport.proto.Gathered.parser(), g -> gathered(g, w),
                        Codecs::raw, Codecs::writeParts, (p, in) -> gathered(p, in, w)),
                new Protocol<>("h", StageHost.Command.class, HostCommand.parser(), c -> hostCommand(c, w), c -> 0L, (c, out) -> { },
                        (p, in) -> hostCommand(p, w)),
                new Protocol<>("m", StageHost.DeviceMemory.class, relay.transport.proto.DeviceMemory.parser(), Codecs::memory,
                        m -> 0L, (m, out) -> { }, (p, in) -> memory(p)));
    }

    private interface RawSize<T> {
        long bytes(T m);
    }

    private interface RawWriter<T> {
        void write(T m, ByteBuffer out);
    }

    private interface Reader<P, T> {
        T read(P header, ByteBuffer in);
    }

    /**
     * One protocol's codec: a header built and read by the protocol's functions, then the values it announces:
     * tensor parts, and last the values of the tensor payload a message carries.
     */
    private record Protocol<T extends WireMessage, P extends MessageLite>(String manifest, Class<T> type, Parser<P> parser,
                                                                          Function<T, P> header, RawSize<? super T> raw,
                                                                          RawWriter<? super T> writeParts, Reader<P, T> reader)
            implements MessageCodec<T> {
        @Override
        public int size(T m) {
            return Math.toIntExact(Frames.headerSize(header.apply(m)) + raw.bytes(m));
        }

        @Override
        public TensorPayload payload(T m) {
            return Codecs.payload(m);
        }

        @Override
        public void writeHead(T m, ByteBuffer out) {
            Frames.writeHeader(header.apply(m), out);
            writeParts.write(m, out);
        }

        @Override
        public T read(ByteBuffer in) throws InvalidProtocolBufferException {
            return reader.read(Frames.readHeader(parser, in), in);
        }

    }

    private static IllegalArgumentException unknown(Object m) {
        return new IllegalArgumentException("no wire form for " + m.getClass().getName());
    }

    // The raw values after a header: a tensor payload, or tensor parts.

    /** The tensor a message carries, or null. */
    private static TensorPayload payload(Object m) {
        if (m instanceof StageCommand.Forward f) return f.activation();
        if (m instanceof StageCommand.Backward b) return b.gradient();
        if (m instanceof StageCommand.TiedGradient t) return t.gradient();
        if (m instanceof StageCommand.TiedWeights t) return t.weights();
        return null;
    }

    /** The tensor parts a message carries (none for most). */
    private static List<TensorPart> parts(Object m) {
        if (m instanceof StageCommand.RestoreState r) return r.parts();
        if (m instanceof StageEvent.Weights w) return w.parts();
        if (m instanceof StageEvent.OptimizerState o) return o.parts();
        if (m instanceof Coordinator.Restore r) return restoreParts(r);
        if (m instanceof Coordinator.Gathered g) return g.events().stream().flatMap(e -> parts(e).stream()).toList();
        return List.of();
    }

    private static List<TensorPart> restoreParts(Coordinator.Restore r) {
        return TensorPart.split(r.values(), Integer.MAX_VALUE).get(0);
    }

    private static long raw(Object m) {
        TensorPayload p = payload(m);
        long bytes = p == null ? 0 : p.bytes();
        for (TensorPart part : parts(m)) bytes += (long) part.values().length * Float.BYTES;
        return bytes;
    }

    private static void writeParts(Object m, ByteBuffer out) {
        for (TensorPart part : parts(m)) Frames.writeFloats(part.values(), out);
    }

    private static TensorData shape(TensorPayload p) {
        TensorData.Builder b = TensorData.newBuilder();
        for (int d : p.shape()) b.addShape(d);
        return b.build();
    }

    private static TensorPayload payload(TensorData shape, ByteBuffer in) {
        return TensorPayload.readFrom(Wire.ints(shape.getShapeList()), in);
    }

    static List<relay.transport.proto.TensorPart> partHeaders(List<TensorPart> parts) {
        List<relay.transport.proto.TensorPart> out = new ArrayList<>();
        for (TensorPart p : parts) {
            var b = relay.transport.proto.TensorPart.newBuilder().setName(p.name()).setOffset(p.offset()).setLength(p.values().length);
            for (int d : p.shape()) b.addShape(d);
            out.add(b.build());
        }
        return out;
    }

    static List<TensorPart> readParts(List<relay.transport.proto.TensorPart> headers, ByteBuffer in) {
        List<TensorPart> out = new ArrayList<>();
        for (relay.transport.proto.TensorPart h : headers) {
            out.add(new TensorPart(h.getName(), Wire.ints(h.getShapeList()), h.getOffset(), Frames.readFloats(h.getLength(), in)));
        }
        return out;
    }

    // Stage commands.

    static relay.transport.proto.StageCommand stageCommand(StageCommand c, Wire w) {
        var b = relay.transport.proto.StageCommand.newBuilder();
        if (c instanceof StageCommand.Connect m) {
            var p = relay.transport.proto.Connect.newBuilder();
            m.stages().forEach(s -> p.addStages(w.ref(s)));
            p.addAllChannels(m.channels());
            b.setConnect(p);
        } else if (c instanceof StageCommand.LeftDevice m) {
            b.setLeftDevice(relay.transport.proto.LeftDevice.newBuilder().setPosition(Wire.position(m.pos())).setForward(m.forward()));
        } else if (c instanceof StageCommand.Tokens m) {
            b.setTokens(tokens(m.pos(), m.ids()).addAllPositions(Wire.list(m.positions())));
        } else if (c instanceof StageCommand.Targets m) {
            b.setTargets(tokens(m.pos(), m.ids()));
        } else if (c instanceof StageCommand.Forward m) {
            b.setForward(Activation.newBuilder().setPosition(Wire.position(m.pos())).setTensor(shape(m.activation()))
                    .addAllPositions(Wire.list(m.positions())));
        } else if (c instanceof StageCommand.Backward m) {
            b.setBackward(Activation.newBuilder().setPosition(Wire.position(m.pos())).setTensor(shape(m.gradient())));
        } else if (c instanceof StageCommand.SetTrainable m) {
            b.setSetTrainable(relay.transport.proto.SetTrainable.newBuilder().setStep(m.step()).setTrainable(m.trainable()));
        } else if (c instanceof StageCommand.Redraw m) {
            b.setRedraw(relay.transport.proto.Redraw.newBuilder().setStep(m.step()).setDraw(m.draw()).setFresh(m.fresh()));
        } else if (c instanceof StageCommand.TiedGradient m) {
            b.setTiedGradient(TiedTensor.newBuilder().setStep(m.step()).setRow(m.row()).setTensor(shape(m.gradient())));
        } else if (c instanceof StageCommand.TiedWeights m) {
            b.setTiedWeights(TiedTensor.newBuilder().setStep(m.step()).setRow(m.row()).setTensor(shape(m.weights())));
        } else if (c instanceof StageCommand.CollectWeights) {
            b.setCollectWeights(Empty.getDefaultInstance());
        } else if (c instanceof StageCommand.CollectState) {
            b.setCollectState(Empty.getDefaultInstance());
        } else if (c instanceof StageCommand.RestoreState m) {
            b.setRestoreState(relay.transport.proto.RestoreState.newBuilder().addAllParts(partHeaders(m.parts())).setLast(m.last()));
        } else if (c instanceof StageCommand.CollectTrace) {
            b.setCollectTrace(Empty.getDefaultInstance());
        } else if (c instanceof StageCommand.WriteShard m) {
            b.setWriteShard(relay.transport.proto.WriteShard.newBuilder().setStep(m.step()).setDirectory(m.directory()));
        } else {
            throw unknown(c);
        }
        return b.build();
    }

    static StageCommand stageCommand(relay.transport.proto.StageCommand p, ByteBuffer in, Wire w) {
        return switch (p.getCommandCase()) {
            case CONNECT -> new StageCommand.Connect(p.getConnect().getStagesList().stream().<ActorRef<StageCommand>>map(w::ref).toList(),
                    p.getConnect().getChannelsList());
            case LEFT_DEVICE -> new StageCommand.LeftDevice(Wire.position(p.getLeftDevice().getPosition()), p.getLeftDevice().getForward());
            case TOKENS -> new StageCommand.Tokens(Wire.position(p.getTokens().getPosition()), Wire.ints(p.getTokens().getTokensList()),
                    Wire.positions(p.getTokens().getPositionsList()));
            case TARGETS -> new StageCommand.Targets(Wire.position(p.getTargets().getPosition()), Wire.ints(p.getTargets().getTokensList()));
            case FORWARD -> new StageCommand.Forward(Wire.position(p.getForward().getPosition()), payload(p.getForward().getTensor(), in),
                    Wire.positions(p.getForward().getPositionsList()));
            case BACKWARD -> new StageCommand.Backward(Wire.position(p.getBackward().getPosition()), payload(p.getBackward().getTensor(), in));
            case SET_TRAINABLE -> new StageCommand.SetTrainable(p.getSetTrainable().getStep(), p.getSetTrainable().getTrainable());
            case REDRAW -> new StageCommand.Redraw(p.getRedraw().getStep(), p.getRedraw().getDraw(), p.getRedraw().getFresh());
            case TIED_GRADIENT -> new StageCommand.TiedGradient(p.getTiedGradient().getStep(), p.getTiedGradient().getRow(),
                    payload(p.getTiedGradient().getTensor(), in));
            case TIED_WEIGHTS -> new StageCommand.TiedWeights(p.getTiedWeights().getStep(), p.getTiedWeights().getRow(),
                    payload(p.getTiedWeights().getTensor(), in));
            case COLLECT_WEIGHTS -> new StageCommand.CollectWeights();
            case COLLECT_STATE -> new StageCommand.CollectState();
            case RESTORE_STATE -> new StageCommand.RestoreState(readParts(p.getRestoreState().getPartsList(), in), p.getRestoreState().getLast());
            case COLLECT_TRACE -> new StageCommand.CollectTrace();
            case WRITE_SHARD -> new StageCommand.WriteShard(p.getWriteShard().getStep(), p.getWriteShard().getDirectory());
            case COMMAND_NOT_SET -> throw new IllegalArgumentException("a stage command without a command");
        };
    }

    private static TokenBatch.Builder tokens(Position pos, int[] ids) {
        TokenBatch.Builder b = TokenBatch.newBuilder().setPosition(Wire.position(pos));
        for (int id : ids) b.addTokens(id);
        return b;
    }

    // Stage events.

    static relay.transport.proto.StageEvent stageEvent(StageEvent e, Wire w) {
        var b = relay.transport.proto.StageEvent.newBuilder().setStage(e.stage());
        if (e instanceof StageEvent.Ready m) {
            b.setReady(relay.transport.proto.StageEvent.Ready.newBuilder().setRef(w.ref(m.ref())).addAllParameters(m.parameters())
                    .setChannel(m.channel()));
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
            b.setWeights(relay.transport.proto.StageEvent.Tensors.newBuilder().addAllParts(partHeaders(m.parts())).setLast(m.last()));
        } else if (e instanceof StageEvent.OptimizerState m) {
            b.setOptimizerState(relay.transport.proto.StageEvent.Tensors.newBuilder().addAllParts(partHeaders(m.parts())).setLast(m.last()));
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
        } else {
            throw unknown(e);
        }
        return b.build();
    }

    static StageEvent stageEvent(relay.transport.proto.StageEvent p, ByteBuffer in, Wire w) {
        int s = p.getStage();
        return switch (p.getEventCase()) {
            case READY -> new StageEvent.Ready(s, w.ref(p.getReady().getRef()), List.copyOf(p.getReady().getParametersList()),
                    p.getReady().getChannel());
            case CONNECTED -> new StageEvent.Connected(s);
            case LOSS -> new StageEvent.Loss(s, Wire.position(p.getLoss().getPosition()), p.getLoss().getLoss());
            case PASS_DONE -> new StageEvent.PassDone(s, Wire.position(p.getPassDone().getPosition()), p.getPassDone().getNormSquared(),
                    p.getPassDone().getStaleness(), p.getPassDone().getBusyNanos());
            case TRAINABLE_SET -> new StageEvent.TrainableSet(s, p.getTrainableSet().getStep(), p.getTrainableSet().getTrainable());
            case REDRAWN -> new StageEvent.Redrawn(s, p.getRedrawn().getStep());
            case FAILED -> new StageEvent.Failed(s, p.getFailed().getHasPosition() ? Wire.position(p.getFailed().getPosition()) : null,
                    failure(p.getFailed().getKind()), p.getFailed().getReason());
            case WEIGHTS -> new StageEvent.Weights(s, readParts(p.getWeights().getPartsList(), in), p.getWeights().getLast());
            case OPTIMIZER_STATE -> new StageEvent.OptimizerState(s, readParts(p.getOptimizerState().getPartsList(), in),
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
            case EVENT_NOT_SET -> throw new IllegalArgumentException("a stage event without an event");
        };
    }

    private static relay.transport.proto.StageEvent.Failed.Kind failure(StageEvent.Failure f) {
        return switch (f) {
            case FAULT -> relay.transport.proto.StageEvent.Failed.Kind.FAULT;
            case DIVERGED -> relay.transport.proto.StageEvent.Failed.Kind.DIVERGED;
            case INPUT -> relay.transport.proto.StageEvent.Failed.Kind.INPUT;
            case PROTOCOL -> relay.transport.proto.StageEvent.Failed.Kind.PROTOCOL;
            case NODE_LOST -> relay.transport.proto.StageEvent.Failed.Kind.NODE_LOST;
        };
    }

    private static StageEvent.Failure failure(relay.transport.proto.StageEvent.Failed.Kind k) {
        return switch (k) {
            case FAULT -> StageEvent.Failure.FAULT;
            case DIVERGED -> StageEvent.Failure.DIVERGED;
            case INPUT -> StageEvent.Failure.INPUT;
            case PROTOCOL -> StageEvent.Failure.PROTOCOL;
            case NODE_LOST -> StageEvent.Failure.NODE_LOST;
            case UNRECOGNIZED -> throw new IllegalArgumentException("unknown failure kind");
        };
    }

    // The coordinator's commands and replies.

    static CoordinatorCommand coordinatorCommand(Coordinator.Command c, Wire w) {
        var b = CoordinatorCommand.newBuilder();
        if (c instanceof Coordinator.Start m) {
            var p = CoordinatorCommand.Start.newBuilder().setReplyTo(w.ref(m.replyTo()));
            m.specs().forEach(s -> p.addSpecs(Wire.spec(s)));
            m.hostOfStage().forEach(h -> p.addHostOfStage(w.ref(h)));
            b.setStart(p);
        } else if (c instanceof Coordinator.RunStep m) {
            b.setRunStep(runStep(m.microbatches(), m.replyTo(), w));
        } else if (c instanceof Coordinator.Evaluate m) {
            b.setEvaluate(runStep(m.batches(), m.replyTo(), w));
        } else if (c instanceof Coordinator.Collect m) {
            b.setCollect(CoordinatorCommand.Collect.newBuilder().setReplyTo(w.ref(m.replyTo())).setWhat(switch (m.what()) {
                case WEIGHTS -> CoordinatorCommand.Collect.What.WEIGHTS;
                case OPTIMIZER_STATE -> CoordinatorCommand.Collect.What.OPTIMIZER_STATE;
                case TRACE -> CoordinatorCommand.Collect.What.TRACE;
            }));
        } else if (c instanceof Coordinator.Restore m) {
            b.setRestore(CoordinatorCommand.Restore.newBuilder().setReplyTo(w.ref(m.replyTo())).addAllParts(partHeaders(restoreParts(m))));
        } else if (c instanceof Coordinator.WriteShards m) {
            b.setWriteShards(CoordinatorCommand.Shards.newBuilder().setStep(m.step()).setDirectory(m.directory()).setReplyTo(w.ref(m.replyTo())));
        } else if (c instanceof Coordinator.AwaitShards m) {
            b.setAwaitShards(CoordinatorCommand.Shards.newBuilder().setStep(m.step()).setReplyTo(w.ref(m.replyTo())));
        } else {
            throw unknown(c);
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
                    w.ref(p.getRunStep().getReplyTo()));
            case EVALUATE -> new Coordinator.Evaluate(p.getEvaluate().getMicrobatchesList().stream().map(Wire::batch).toList(),
                    w.ref(p.getEvaluate().getReplyTo()));
            case COLLECT -> new Coordinator.Collect(switch (p.getCollect().getWhat()) {
                case WEIGHTS -> Coordinator.What.WEIGHTS;
                case OPTIMIZER_STATE -> Coordinator.What.OPTIMIZER_STATE;
                case TRACE -> Coordinator.What.TRACE;
                case UNRECOGNIZED -> throw new IllegalArgumentException("unknown collection " + p.getCollect().getWhatValue());
            }, w.ref(p.getCollect().getReplyTo()));
            case RESTORE -> new Coordinator.Restore(TensorPart.assembleValues(readParts(p.getRestore().getPartsList(), in)),
                    w.ref(p.getRestore().getReplyTo()));
            case WRITE_SHARDS -> new Coordinator.WriteShards(p.getWriteShards().getStep(), p.getWriteShards().getDirectory(),
                    w.ref(p.getWriteShards().getReplyTo()));
            case AWAIT_SHARDS -> new Coordinator.AwaitShards(p.getAwaitShards().getStep(), w.ref(p.getAwaitShards().getReplyTo()));
            case COMMAND_NOT_SET -> throw new IllegalArgumentException("a coordinator command without a command");
        };
    }

    static relay.transport.proto.StepResult stepResult(Coordinator.StepResult r) {
        var b = relay.transport.proto.StepResult.newBuilder().setStep(r.step()).setLoss(r.loss()).setWallNanos(r.wallNanos())
                .setBubble(r.bubble()).setStaleness(r.staleness()).setGradNorm(r.gradNorm()).setCoordinatorMessages(r.coordinatorMessages())
                .setCoordinatorNanos(r.coordinatorNanos()).setError(r.error() == null ? "" : r.error());
        for (double l : r.losses()) b.addLosses(l);
        for (long n : r.busyNanos()) b.addBusyNanos(n);
        if (r.failure() != null) b.setFailure(failure(r.failure()));
        return b.build();
    }

    static Coordinator.StepResult stepResult(relay.transport.proto.StepResult p) {
        boolean ok = p.getError().isEmpty();
        return new Coordinator.StepResult(p.getStep(), p.getLoss(), p.getLossesList().stream().mapToDouble(Double::doubleValue).toArray(),
                p.getWallNanos(), p.getBusyNanosList().stream().mapToLong(Long::longValue).toArray(), p.getBubble(), p.getStaleness(),
                p.getGradNorm(), p.getCoordinatorMessages(), p.getCoordinatorNanos(), ok ? null : p.getError(), ok ? null : failure(p.getFailure()));
    }

    static relay.transport.proto.Gathered gathered(Coordinator.Gathered g, Wire w) {
        var b = relay.transport.proto.Gathered.newBuilder().setError(g.error() == null ? "" : g.error());
        g.events().forEach(e -> b.addEvents(stageEvent(e, w)));
        if (g.failure() != null) b.setFailure(failure(g.failure()));
        return b.build();
    }

    static Coordinator.Gathered gathered(relay.transport.proto.Gathered p, ByteBuffer in, Wire w) {
        boolean ok = p.getError().isEmpty();
        List<StageEvent> events = new ArrayList<>();
        for (var e : p.getEventsList()) events.add(stageEvent(e, in, w));
        return new Coordinator.Gathered(events, ok ? null : p.getError(), ok ? null : failure(p.getFailure()));
    }

    // The stage host's commands and replies.

    static HostCommand hostCommand(StageHost.Command c, Wire w) {
        var b = HostCommand.newBuilder();
        if (c instanceof StageHost.Spawn m) {
            b.setSpawn(HostCommand.Spawn.newBuilder().setSpec(Wire.spec(m.spec())).setEvents(w.ref(m.events())));
        } else if (c instanceof StageHost.ReportMemory m) {
            b.setReportMemory(HostCommand.ReportMemory.newBuilder().setReplyTo(w.ref(m.replyTo())));
        } else if (c instanceof StageHost.StopStages m) {
            b.setStopStages(HostCommand.ReportMemory.newBuilder().setReplyTo(w.ref(m.replyTo())));
        } else {
            throw unknown(c);
        }
        return b.build();
    }

    static StageHost.Command hostCommand(HostCommand p, Wire w) {
        return switch (p.getCommandCase()) {
            case SPAWN -> new StageHost.Spawn(Wire.spec(p.getSpawn().getSpec()), w.ref(p.getSpawn().getEvents()));
            case REPORT_MEMORY -> new StageHost.ReportMemory(w.ref(p.getReportMemory().getReplyTo()));
            case STOP_STAGES -> new StageHost.StopStages(w.ref(p.getStopStages().getReplyTo()));
            case COMMAND_NOT_SET -> throw new IllegalArgumentException("a host command without a command");
        };
    }

    static relay.transport.proto.DeviceMemory memory(StageHost.DeviceMemory m) {
        var b = relay.transport.proto.DeviceMemory.newBuilder();
        m.peaks().forEach((d, peaks) -> {
            var device = relay.transport.proto.DeviceMemory.Device.newBuilder().setDevice(d);
            peaks.forEach((c, bytes) -> device.putPeakBytes(c.key(), bytes));
            b.addDevices(device);
        });
        return b.build();
    }

    static StageHost.DeviceMemory memory(relay.transport.proto.DeviceMemory p) {
        Map<Integer, Map<Category, Long>> peaks = new LinkedHashMap<>();
        for (var d : p.getDevicesList()) {
            Map<Category, Long> m = new EnumMap<>(Category.class);
            d.getPeakBytesMap().forEach((k, v) -> m.put(Category.valueOf(k.toUpperCase(Locale.ROOT)), v));
            peaks.put(d.getDevice(), m);
        }
        return new StageHost.DeviceMemory(peaks);
    }
}
