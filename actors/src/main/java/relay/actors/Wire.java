package relay.actors;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.nio.ByteBuffer;
import relay.stages.tensor.DType;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.ActorSystem;
import relay.optimizers.Method;
import relay.stages.model.Family;
import relay.stages.model.ModelConfig;
import relay.stages.train.Batch;
import relay.transport.Frames;
import relay.transport.TensorPayload;
import relay.transport.proto.ModelShape;
import relay.transport.proto.RotaryScaling;
import relay.transport.proto.TensorData;

/**
 * The Protobuf form of the values inside the actors' messages — positions, model shapes, pipeline configurations (their
 * optimizer settings in {@link SettingsWire}), specs, batches, actor references — one pair of conversions each, for the
 * protocols' codecs.
 */
final class Wire {
    private final ActorRefResolver refs;

    Wire(ActorSystem<?> system) {
        this.refs = ActorRefResolver.get(system);
    }

    String ref(ActorRef<?> ref) {
        return refs.toSerializationFormat(ref);
    }

    <T> ActorRef<T> ref(String path) {
        return refs.resolveActorRef(path);
    }

    static relay.transport.proto.Position position(Position p) {
        relay.transport.proto.Pass pass = switch (p.pass()) {
            case TRAIN -> relay.transport.proto.Pass.TRAIN;
            case NORM -> relay.transport.proto.Pass.NORM;
            case EVAL -> relay.transport.proto.Pass.EVAL;
        };
        return relay.transport.proto.Position.newBuilder().setStep(p.step()).setPass(pass)
                .setPassId(p.passId()).setMicrobatch(p.microbatch()).setMicrobatches(p.microbatches()).setBatch(p.batch())
                .setSeq(p.seq()).setClip(p.clip()).build();
    }

    static Position position(relay.transport.proto.Position p) {
        Pass pass = switch (p.getPass()) {
            case TRAIN -> Pass.TRAIN;
            case NORM -> Pass.NORM;
            case EVAL -> Pass.EVAL;
            case UNRECOGNIZED -> throw new IllegalArgumentException("unknown pass " + p.getPassValue());
        };
        return new Position(p.getStep(), pass, p.getPassId(), p.getMicrobatch(), p.getMicrobatches(), p.getBatch(), p.getSeq(), p.getClip());
    }

    static ModelShape model(ModelConfig c) {
        return ModelShape.newBuilder().setFamily(c.family() == Family.GPT2 ? ModelShape.Family.GPT2 : ModelShape.Family.LLAMA)
                .setVocabSize(c.vocabSize()).setHidden(c.hidden()).setLayers(c.layers()).setHeads(c.heads()).setKvHeads(c.kvHeads())
                .setHeadDim(c.headDim()).setIntermediate(c.intermediate()).setMaxPositions(c.maxPositions()).setNormEps(c.normEps())
                .setRopeTheta(c.ropeTheta()).setTiedEmbeddings(c.tiedEmbeddings()).setModelType(c.modelType())
                .setRope(rope(c.options().rope(), c.options().ropeSpelling())).setAttentionBias(c.options().attentionBias())
                .setMlpBias(c.options().mlpBias()).setSlidingWindow(c.options().slidingWindow())
                .setWindowFromLayer(c.options().windowFromLayer()).build();
    }

    static RotaryScaling rope(ModelConfig.Rope r, ModelConfig.RopeSpelling spelling) {
        RotaryScaling.Spelling s = switch (spelling) {
            case NONE -> RotaryScaling.Spelling.NONE;
            case ROPE_SCALING_TYPE -> RotaryScaling.Spelling.ROPE_SCALING_TYPE;
            case ROPE_SCALING_ROPE_TYPE -> RotaryScaling.Spelling.ROPE_SCALING_ROPE_TYPE;
            case ROPE_PARAMETERS -> RotaryScaling.Spelling.ROPE_PARAMETERS;
        };
        return RotaryScaling.newBuilder().setType(r.type()).setSpelling(s).setFactor(r.factor()).setLowFreqFactor(r.lowFreqFactor())
                .setHighFreqFactor(r.highFreqFactor()).setOriginalMaxPositions(r.originalMaxPositions())
                .setAttentionFactor(r.attentionFactor()).setBetaFast(r.betaFast()).setBetaSlow(r.betaSlow()).setMscale(r.mscale())
                .setMscaleAllDim(r.mscaleAllDim()).setNoTruncate(!r.truncate()).build();
    }

    static ModelConfig.RopeSpelling spelling(RotaryScaling r) {
        return switch (r.getSpelling()) {
            case NONE -> ModelConfig.RopeSpelling.NONE;
            case ROPE_SCALING_TYPE -> ModelConfig.RopeSpelling.ROPE_SCALING_TYPE;
            case ROPE_SCALING_ROPE_TYPE -> ModelConfig.RopeSpelling.ROPE_SCALING_ROPE_TYPE;
            case ROPE_PARAMETERS -> ModelConfig.RopeSpelling.ROPE_PARAMETERS;
            case UNRECOGNIZED -> throw new IllegalArgumentException("unknown rotary spelling " + r.getSpellingValue());
        };
    }

    static ModelConfig.Rope rope(RotaryScaling r) {
        return new ModelConfig.Rope(r.getType().isEmpty() ? "default" : r.getType(), r.getFactor(), r.getLowFreqFactor(),
                r.getHighFreqFactor(), r.getOriginalMaxPositions(), r.getAttentionFactor(), r.getBetaFast(), r.getBetaSlow(),
                r.getMscale(), r.getMscaleAllDim(), !r.getNoTruncate());
    }

    static ModelConfig model(ModelShape m) {
        Family family = switch (m.getFamily()) {
            case GPT2 -> Family.GPT2;
            case LLAMA -> Family.LLAMA;
            case UNRECOGNIZED -> throw new IllegalArgumentException("unknown model family " + m.getFamilyValue());
        };
        ModelConfig.Options options = new ModelConfig.Options(m.getModelType().isEmpty() ? family.modelType() : m.getModelType(),
                rope(m.getRope()), spelling(m.getRope()), m.getAttentionBias(), m.getMlpBias(), m.getSlidingWindow(), m.getWindowFromLayer());
        return new ModelConfig(family, m.getVocabSize(), m.getHidden(), m.getLayers(), m.getHeads(), m.getKvHeads(), m.getHeadDim(),
                m.getIntermediate(), m.getMaxPositions(), m.getNormEps(), m.getRopeTheta(), m.getTiedEmbeddings(), options);
    }

    static relay.transport.proto.PipelineConfig config(PipelineConfig c) {
        return relay.transport.proto.PipelineConfig.newBuilder()
                .setMode(c.mode() == UpdateMode.EAGER ? relay.transport.proto.PipelineConfig.Mode.EAGER : relay.transport.proto.PipelineConfig.Mode.EXACT)
                .setSchedule(switch (c.schedule()) {
                    case GPIPE -> relay.transport.proto.PipelineConfig.Schedule.GPIPE;
                    case ONE_F_ONE_B -> relay.transport.proto.PipelineConfig.Schedule.ONE_F_ONE_B;
                    case ZB_H1 -> relay.transport.proto.PipelineConfig.Schedule.ZB_H1;
                })
                .setMethod(c.method().key()).setSettings(SettingsWire.settings(c.settings())).setLisa(c.lisa()).setThreadsPerDevice(c.threadsPerDevice())
                .setTraceSteps(c.traceSteps()).setStepTimeoutMillis(c.stepTimeout().toMillis()).setFirstStep(c.firstStep()).setRecompute(c.recompute())
                .setWeights(dtype(c.precision().weights())).setActivations(dtype(c.precision().activations())).build();
    }

    static PipelineConfig config(relay.transport.proto.PipelineConfig c) {
        UpdateMode mode = switch (c.getMode()) {
            case EAGER -> UpdateMode.EAGER;
            case EXACT -> UpdateMode.EXACT;
            case UNRECOGNIZED -> throw new IllegalArgumentException("unknown update mode " + c.getModeValue());
        };
        PipelineSchedule schedule = switch (c.getSchedule()) {
            case GPIPE -> PipelineSchedule.GPIPE;
            case ONE_F_ONE_B -> PipelineSchedule.ONE_F_ONE_B;
            case ZB_H1 -> PipelineSchedule.ZB_H1;
            case UNRECOGNIZED -> throw new IllegalArgumentException("unknown schedule " + c.getScheduleValue());
        };
        return new PipelineConfig(new PipelineConfig.Training(Method.named(c.getMethod()), SettingsWire.settings(c.getSettings()), c.getLisa()),
                new PipelineConfig.Execution(mode, schedule, c.getThreadsPerDevice(), c.getRecompute(),
                        new relay.stages.model.Precision(dtype(c.getWeights()), dtype(c.getActivations()))),
                new PipelineConfig.Limits(c.getTraceSteps(), Duration.ofMillis(c.getStepTimeoutMillis())), c.getFirstStep());
    }

    static relay.transport.proto.StageSpec spec(StageSpec s) {
        relay.transport.proto.StageSpec.Builder b = relay.transport.proto.StageSpec.newBuilder().setStage(s.stage())
                .setModel(model(s.model())).setSeed(s.seed()).setWeights(s.weights() == null ? "" : s.weights().toString())
                .setDevices(s.placement().devices()).setConfig(config(s.config())).setTraceEpochMicros(s.traceEpochMicros())
                .setReplica(s.replica()).setReplicas(s.placement().replicas());
        for (int d : s.placement().deviceOfStage()) b.addDeviceOfStage(d);
        return b.build();
    }

    static StageSpec spec(relay.transport.proto.StageSpec s) {
        int[] devices = s.getDeviceOfStageList().stream().mapToInt(Integer::intValue).toArray();
        return new StageSpec(s.getStage(), s.getReplica(), model(s.getModel()), s.getSeed(), s.getWeights().isEmpty() ? null : Path.of(s.getWeights()),
                new Placement(s.getDevices(), devices, s.getReplicas()), config(s.getConfig()), s.getTraceEpochMicros());
    }

    static relay.transport.proto.Batch batch(Batch b) {
        relay.transport.proto.Batch.Builder p = relay.transport.proto.Batch.newBuilder().setBatch(b.batch()).setSeq(b.seq());
        for (int t : b.inputs()) p.addInputs(t);
        for (int t : b.targets()) p.addTargets(t);
        return p.addAllPositions(list(b.positions())).build();
    }

    static Batch batch(relay.transport.proto.Batch b) {
        return new Batch(ints(b.getInputsList()), ints(b.getTargetsList()), b.getBatch(), b.getSeq(), positions(b.getPositionsList()));
    }

    static TensorData shape(TensorPayload p) {
        TensorData.Builder b = TensorData.newBuilder();
        for (int d : p.shape()) b.addShape(d);
        return b.setDtype(dtype(p.dtype())).build();
    }

    static TensorPayload payload(TensorData shape, ByteBuffer in) {
        return TensorPayload.readFrom(ints(shape.getShapeList()), dtype(shape.getDtype()), in);
    }

    static relay.transport.proto.DType dtype(DType d) {
        return d == DType.BF16 ? relay.transport.proto.DType.BF16 : relay.transport.proto.DType.F32;
    }

    static DType dtype(relay.transport.proto.DType d) {
        return switch (d) {
            case F32 -> DType.F32;
            case BF16 -> DType.BF16;
            case UNRECOGNIZED -> throw new IllegalArgumentException("unknown dtype " + d + " on the wire");
        };
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
            out.add(new TensorPart(h.getName(), ints(h.getShapeList()), h.getOffset(), Frames.readFloats(h.getLength(), in)));
        }
        return out;
    }

    static int[] ints(List<Integer> list) {
        return list.stream().mapToInt(Integer::intValue).toArray();
    }

    /** Position ids as they travel: none for null (a microbatch that has them has at least one). */
    static List<Integer> list(int[] positions) {
        return positions == null ? List.of() : java.util.Arrays.stream(positions).boxed().toList();
    }

    static int[] positions(List<Integer> list) {
        return list.isEmpty() ? null : ints(list);
    }
}
