package relay.actors;

import com.google.protobuf.InvalidProtocolBufferException;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import relay.stages.memory.Category;
import relay.transport.MessageCodec;
import relay.transport.MessageCodecs;
import relay.transport.TensorPayload;
import relay.transport.WireMessage;
import relay.transport.proto.Activation;
import relay.transport.proto.CoordinatorCommand;
import relay.transport.proto.Empty;
import relay.transport.proto.HostCommand;
import relay.transport.proto.TiedTensor;
import relay.transport.proto.TokenBatch;
import relay.transport.proto.TraceSpan;

/**
 * The Protobuf form of every protocol of the actors: one codec per protocol (stage commands, stage events,
 * coordinator commands and replies, host commands and replies). Decoding switches over the oneof of the
 * protocol's message, so the compiler checks that every case is read; encoding covers every record of the
 * sealed protocol, which the round-trip tests check for each permitted type.
 */
public final class Codecs implements MessageCodecs {

    @Override
    public List<MessageCodec<?>> codecs(ActorSystem<?> system) {
        Wire w = new Wire(system);
        return List.of(
                codec("s", StageCommand.class, c -> stageCommand(c, w).toByteArray(),
                        b -> stageCommand(relay.transport.proto.StageCommand.parseFrom(b), w)),
                codec("e", StageEvent.class, e -> stageEvent(e, w).toByteArray(),
                        b -> stageEvent(relay.transport.proto.StageEvent.parseFrom(b), w)),
                codec("c", Coordinator.Command.class, c -> coordinatorCommand(c, w).toByteArray(),
                        b -> coordinatorCommand(CoordinatorCommand.parseFrom(b), w)),
                codec("r", Coordinator.StepResult.class, r -> stepResult(r).toByteArray(),
                        b -> stepResult(relay.transport.proto.StepResult.parseFrom(b))),
                codec("g", Coordinator.Gathered.class, g -> gathered(g, w).toByteArray(),
                        b -> gathered(relay.transport.proto.Gathered.parseFrom(b), w)),
                codec("h", StageHost.Command.class, c -> hostCommand(c, w).toByteArray(), b -> hostCommand(HostCommand.parseFrom(b), w)),
                codec("m", StageHost.DeviceMemory.class, m -> memory(m).toByteArray(),
                        b -> memory(relay.transport.proto.DeviceMemory.parseFrom(b))));
    }

    private interface Encoder<T> {
        byte[] encode(T m);
    }

    private interface Decoder<T> {
        T decode(byte[] b) throws InvalidProtocolBufferException;
    }

    private static <T extends WireMessage> MessageCodec<T> codec(String manifest, Class<T> type, Encoder<T> encoder, Decoder<T> decoder) {
        return new MessageCodec<>() {
            @Override
            public String manifest() {
                return manifest;
            }

            @Override
            public Class<T> type() {
                return type;
            }

            @Override
            public byte[] toBinary(T m) {
                return encoder.encode(m);
            }

            @Override
            public T fromBinary(byte[] bytes) throws InvalidProtocolBufferException {
                return decoder.decode(bytes);
            }
        };
    }

    private static IllegalArgumentException unknown(Object m) {
        return new IllegalArgumentException("no Protobuf form for " + m.getClass().getName());
    }

    // Stage commands.

    static relay.transport.proto.StageCommand stageCommand(StageCommand c, Wire w) {
        var b = relay.transport.proto.StageCommand.newBuilder();
        if (c instanceof StageCommand.Connect m) {
            var p = relay.transport.proto.Connect.newBuilder();
            m.stages().forEach(s -> p.addStages(w.ref(s)));
            b.setConnect(p);
        } else if (c instanceof StageCommand.LeftDevice m) {
            b.setLeftDevice(relay.transport.proto.LeftDevice.newBuilder().setPosition(Wire.position(m.pos())).setForward(m.forward()));
        } else if (c instanceof StageCommand.Tokens m) {
            b.setTokens(tokens(m.pos(), m.ids()));
        } else if (c instanceof StageCommand.Targets m) {
            b.setTargets(tokens(m.pos(), m.ids()));
        } else if (c instanceof StageCommand.Forward m) {
            b.setForward(Activation.newBuilder().setPosition(Wire.position(m.pos())).setTensor(m.activation().toProto()));
        } else if (c instanceof StageCommand.Backward m) {
            b.setBackward(Activation.newBuilder().setPosition(Wire.position(m.pos())).setTensor(m.gradient().toProto()));
        } else if (c instanceof StageCommand.SetTrainable m) {
            b.setSetTrainable(relay.transport.proto.SetTrainable.newBuilder().setStep(m.step()).setTrainable(m.trainable()));
        } else if (c instanceof StageCommand.TiedGradient m) {
            b.setTiedGradient(TiedTensor.newBuilder().setStep(m.step()).setTensor(m.gradient().toProto()));
        } else if (c instanceof StageCommand.TiedWeights m) {
            b.setTiedWeights(TiedTensor.newBuilder().setStep(m.step()).setTensor(m.weights().toProto()));
        } else if (c instanceof StageCommand.CollectWeights) {
            b.setCollectWeights(Empty.getDefaultInstance());
        } else if (c instanceof StageCommand.CollectState) {
            b.setCollectState(Empty.getDefaultInstance());
        } else if (c instanceof StageCommand.RestoreState m) {
            b.setRestoreState(relay.transport.proto.RestoreState.newBuilder().addAllValues(Wire.state(m.values())));
        } else if (c instanceof StageCommand.CollectTrace) {
            b.setCollectTrace(Empty.getDefaultInstance());
        } else {
            throw unknown(c);
        }
        return b.build();
    }

    static StageCommand stageCommand(relay.transport.proto.StageCommand p, Wire w) {
        return switch (p.getCommandCase()) {
            case CONNECT -> new StageCommand.Connect(p.getConnect().getStagesList().stream().<ActorRef<StageCommand>>map(w::ref).toList());
            case LEFT_DEVICE -> new StageCommand.LeftDevice(Wire.position(p.getLeftDevice().getPosition()), p.getLeftDevice().getForward());
            case TOKENS -> new StageCommand.Tokens(Wire.position(p.getTokens().getPosition()), Wire.ints(p.getTokens().getTokensList()));
            case TARGETS -> new StageCommand.Targets(Wire.position(p.getTargets().getPosition()), Wire.ints(p.getTargets().getTokensList()));
            case FORWARD -> new StageCommand.Forward(Wire.position(p.getForward().getPosition()),
                    TensorPayload.fromProto(p.getForward().getTensor()));
            case BACKWARD -> new StageCommand.Backward(Wire.position(p.getBackward().getPosition()),
                    TensorPayload.fromProto(p.getBackward().getTensor()));
            case SET_TRAINABLE -> new StageCommand.SetTrainable(p.getSetTrainable().getStep(), p.getSetTrainable().getTrainable());
            case TIED_GRADIENT -> new StageCommand.TiedGradient(p.getTiedGradient().getStep(), TensorPayload.fromProto(p.getTiedGradient().getTensor()));
            case TIED_WEIGHTS -> new StageCommand.TiedWeights(p.getTiedWeights().getStep(), TensorPayload.fromProto(p.getTiedWeights().getTensor()));
            case COLLECT_WEIGHTS -> new StageCommand.CollectWeights();
            case COLLECT_STATE -> new StageCommand.CollectState();
            case RESTORE_STATE -> new StageCommand.RestoreState(Wire.state(p.getRestoreState().getValuesList()));
            case COLLECT_TRACE -> new StageCommand.CollectTrace();
            case COMMAND_NOT_SET -> throw new IllegalArgumentException("a stage command without a command");
        };
    }

    private static TokenBatch tokens(Position pos, int[] ids) {
        TokenBatch.Builder b = TokenBatch.newBuilder().setPosition(Wire.position(pos));
        for (int id : ids) b.addTokens(id);
        return b.build();
    }

    // Stage events.

    static relay.transport.proto.StageEvent stageEvent(StageEvent e, Wire w) {
        var b = relay.transport.proto.StageEvent.newBuilder().setStage(e.stage());
        if (e instanceof StageEvent.Ready m) {
            b.setReady(relay.transport.proto.StageEvent.Ready.newBuilder().setRef(w.ref(m.ref())).addAllParameters(m.parameters()));
        } else if (e instanceof StageEvent.Connected) {
            b.setConnected(Empty.getDefaultInstance());
        } else if (e instanceof StageEvent.Loss m) {
            b.setLoss(relay.transport.proto.StageEvent.Loss.newBuilder().setPosition(Wire.position(m.pos())).setLoss(m.loss()));
        } else if (e instanceof StageEvent.PassDone m) {
            b.setPassDone(relay.transport.proto.StageEvent.PassDone.newBuilder().setPosition(Wire.position(m.pos()))
                    .setNormSquared(m.normSquared()).setStaleness(m.staleness()).setBusyNanos(m.busyNanos()));
        } else if (e instanceof StageEvent.TrainableSet m) {
            b.setTrainableSet(relay.transport.proto.StageEvent.TrainableSet.newBuilder().setStep(m.step()).setTrainable(m.trainable()));
        } else if (e instanceof StageEvent.Failed m) {
            var f = relay.transport.proto.StageEvent.Failed.newBuilder().setKind(failure(m.kind())).setReason(m.reason())
                    .setHasPosition(m.pos() != null);
            if (m.pos() != null) f.setPosition(Wire.position(m.pos()));
            b.setFailed(f);
        } else if (e instanceof StageEvent.Weights m) {
            b.setWeights(relay.transport.proto.StageEvent.Tensors.newBuilder().addAllTensors(Wire.named(m.tensors())));
        } else if (e instanceof StageEvent.OptimizerState m) {
            b.setOptimizerState(relay.transport.proto.StageEvent.Tensors.newBuilder().addAllTensors(Wire.state(m.values())));
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
        } else {
            throw unknown(e);
        }
        return b.build();
    }

    static StageEvent stageEvent(relay.transport.proto.StageEvent p, Wire w) {
        int s = p.getStage();
        return switch (p.getEventCase()) {
            case READY -> new StageEvent.Ready(s, w.ref(p.getReady().getRef()), List.copyOf(p.getReady().getParametersList()));
            case CONNECTED -> new StageEvent.Connected(s);
            case LOSS -> new StageEvent.Loss(s, Wire.position(p.getLoss().getPosition()), p.getLoss().getLoss());
            case PASS_DONE -> new StageEvent.PassDone(s, Wire.position(p.getPassDone().getPosition()), p.getPassDone().getNormSquared(),
                    p.getPassDone().getStaleness(), p.getPassDone().getBusyNanos());
            case TRAINABLE_SET -> new StageEvent.TrainableSet(s, p.getTrainableSet().getStep(), p.getTrainableSet().getTrainable());
            case FAILED -> new StageEvent.Failed(s, p.getFailed().getHasPosition() ? Wire.position(p.getFailed().getPosition()) : null,
                    failure(p.getFailed().getKind()), p.getFailed().getReason());
            case WEIGHTS -> new StageEvent.Weights(s, Wire.named(p.getWeights().getTensorsList()));
            case OPTIMIZER_STATE -> new StageEvent.OptimizerState(s, Wire.state(p.getOptimizerState().getTensorsList()));
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
            case EVENT_NOT_SET -> throw new IllegalArgumentException("a stage event without an event");
        };
    }

    private static relay.transport.proto.StageEvent.Failed.Kind failure(StageEvent.Failure f) {
        return switch (f) {
            case FAULT -> relay.transport.proto.StageEvent.Failed.Kind.FAULT;
            case DIVERGED -> relay.transport.proto.StageEvent.Failed.Kind.DIVERGED;
            case INPUT -> relay.transport.proto.StageEvent.Failed.Kind.INPUT;
            case PROTOCOL -> relay.transport.proto.StageEvent.Failed.Kind.PROTOCOL;
        };
    }

    private static StageEvent.Failure failure(relay.transport.proto.StageEvent.Failed.Kind k) {
        return switch (k) {
            case FAULT -> StageEvent.Failure.FAULT;
            case DIVERGED -> StageEvent.Failure.DIVERGED;
            case INPUT -> StageEvent.Failure.INPUT;
            case PROTOCOL -> StageEvent.Failure.PROTOCOL;
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
            b.setRestore(CoordinatorCommand.Restore.newBuilder().setReplyTo(w.ref(m.replyTo())).addAllValues(Wire.state(m.values())));
        } else if (c instanceof Coordinator.FromStage m) {
            b.setFromStage(stageEvent(m.event(), w));
        } else if (c instanceof Coordinator.Timeout m) {
            b.setTimeout(CoordinatorCommand.Timeout.newBuilder().setRequest(m.request()));
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

    static Coordinator.Command coordinatorCommand(CoordinatorCommand p, Wire w) {
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
            case RESTORE -> new Coordinator.Restore(Wire.state(p.getRestore().getValuesList()), w.ref(p.getRestore().getReplyTo()));
            case FROM_STAGE -> new Coordinator.FromStage(stageEvent(p.getFromStage(), w));
            case TIMEOUT -> new Coordinator.Timeout(p.getTimeout().getRequest());
            case COMMAND_NOT_SET -> throw new IllegalArgumentException("a coordinator command without a command");
        };
    }

    static relay.transport.proto.StepResult stepResult(Coordinator.StepResult r) {
        var b = relay.transport.proto.StepResult.newBuilder().setStep(r.step()).setLoss(r.loss()).setWallNanos(r.wallNanos())
                .setBubble(r.bubble()).setStaleness(r.staleness()).setGradNorm(r.gradNorm()).setError(r.error() == null ? "" : r.error());
        for (double l : r.losses()) b.addLosses(l);
        for (long n : r.busyNanos()) b.addBusyNanos(n);
        if (r.failure() != null) b.setFailure(failure(r.failure()));
        return b.build();
    }

    static Coordinator.StepResult stepResult(relay.transport.proto.StepResult p) {
        boolean ok = p.getError().isEmpty();
        return new Coordinator.StepResult(p.getStep(), p.getLoss(), p.getLossesList().stream().mapToDouble(Double::doubleValue).toArray(),
                p.getWallNanos(), p.getBusyNanosList().stream().mapToLong(Long::longValue).toArray(), p.getBubble(), p.getStaleness(),
                p.getGradNorm(), ok ? null : p.getError(), ok ? null : failure(p.getFailure()));
    }

    static relay.transport.proto.Gathered gathered(Coordinator.Gathered g, Wire w) {
        var b = relay.transport.proto.Gathered.newBuilder().setError(g.error() == null ? "" : g.error());
        g.events().forEach(e -> b.addEvents(stageEvent(e, w)));
        if (g.failure() != null) b.setFailure(failure(g.failure()));
        return b.build();
    }

    static Coordinator.Gathered gathered(relay.transport.proto.Gathered p, Wire w) {
        boolean ok = p.getError().isEmpty();
        return new Coordinator.Gathered(p.getEventsList().stream().map(e -> stageEvent(e, w)).toList(), ok ? null : p.getError(),
                ok ? null : failure(p.getFailure()));
    }

    // The stage host's commands and replies.

    static HostCommand hostCommand(StageHost.Command c, Wire w) {
        var b = HostCommand.newBuilder();
        if (c instanceof StageHost.Spawn m) {
            b.setSpawn(HostCommand.Spawn.newBuilder().setSpec(Wire.spec(m.spec())).setEvents(w.ref(m.events())));
        } else if (c instanceof StageHost.ReportMemory m) {
            b.setReportMemory(HostCommand.ReportMemory.newBuilder().setReplyTo(w.ref(m.replyTo())));
        } else {
            throw unknown(c);
        }
        return b.build();
    }

    static StageHost.Command hostCommand(HostCommand p, Wire w) {
        return switch (p.getCommandCase()) {
            case SPAWN -> new StageHost.Spawn(Wire.spec(p.getSpawn().getSpec()), w.ref(p.getSpawn().getEvents()));
            case REPORT_MEMORY -> new StageHost.ReportMemory(w.ref(p.getReportMemory().getReplyTo()));
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
