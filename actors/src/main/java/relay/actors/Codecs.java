package relay.actors;

import com.google.protobuf.InvalidProtocolBufferException;
import java.util.List;
import relay.transport.MessageCodec;
import relay.transport.MessageCodecs;
import relay.transport.TensorPayload;
import relay.transport.WireMessage;
import relay.transport.proto.Activation;
import relay.transport.proto.StageReport;
import relay.transport.proto.TiedTensor;
import relay.transport.proto.TokenBatch;

/** The Protobuf form of every message of the stage and coordinator protocols that may cross a JVM. */
public final class Codecs implements MessageCodecs {

    /** A codec from two functions. */
    private record Codec<T extends WireMessage>(String manifest, Class<T> type, Encoder<T> encoder, Decoder<T> decoder)
            implements MessageCodec<T> {
        @Override
        public byte[] toBinary(T m) {
            return encoder.encode(m);
        }

        @Override
        public T fromBinary(byte[] bytes) throws InvalidProtocolBufferException {
            return decoder.decode(bytes);
        }
    }

    private interface Encoder<T> {
        byte[] encode(T m);
    }

    private interface Decoder<T> {
        T decode(byte[] b) throws InvalidProtocolBufferException;
    }

    private static byte[] activation(Activation.Direction d, Position p, TensorPayload t) {
        return Activation.newBuilder().setDirection(d).setPosition(p.toProto()).setTensor(t.toProto()).build().toByteArray();
    }

    private static byte[] tokens(TokenBatch.Role role, Position p, int[] ids) {
        TokenBatch.Builder b = TokenBatch.newBuilder().setRole(role).setPosition(p.toProto());
        for (int id : ids) b.addTokens(id);
        return b.build().toByteArray();
    }

    private static int[] ids(TokenBatch b) {
        return b.getTokensList().stream().mapToInt(Integer::intValue).toArray();
    }

    private static byte[] tied(TiedTensor.Kind kind, long step, TensorPayload t) {
        return TiedTensor.newBuilder().setKind(kind).setStep(step).setTensor(t.toProto()).build().toByteArray();
    }

    @Override
    public List<MessageCodec<?>> codecs() {
        return List.of(
                new Codec<>("fwd", StageActor.Forward.class,
                        m -> activation(Activation.Direction.FORWARD, m.pos(), m.activation()),
                        b -> {
                            Activation a = Activation.parseFrom(b);
                            return new StageActor.Forward(Position.fromProto(a.getPosition()), TensorPayload.fromProto(a.getTensor()));
                        }),
                new Codec<>("bwd", StageActor.Backward.class,
                        m -> activation(Activation.Direction.BACKWARD, m.pos(), m.gradient()),
                        b -> {
                            Activation a = Activation.parseFrom(b);
                            return new StageActor.Backward(Position.fromProto(a.getPosition()), TensorPayload.fromProto(a.getTensor()));
                        }),
                new Codec<>("tok", StageActor.Tokens.class,
                        m -> tokens(TokenBatch.Role.INPUTS, m.pos(), m.ids()),
                        b -> {
                            TokenBatch t = TokenBatch.parseFrom(b);
                            return new StageActor.Tokens(Position.fromProto(t.getPosition()), ids(t));
                        }),
                new Codec<>("tgt", StageActor.Targets.class,
                        m -> tokens(TokenBatch.Role.TARGETS, m.pos(), m.ids()),
                        b -> {
                            TokenBatch t = TokenBatch.parseFrom(b);
                            return new StageActor.Targets(Position.fromProto(t.getPosition()), ids(t));
                        }),
                new Codec<>("train", StageActor.SetTrainable.class,
                        m -> relay.transport.proto.SetTrainable.newBuilder().setStep(m.step()).setTrainable(m.trainable())
                                .build().toByteArray(),
                        b -> {
                            relay.transport.proto.SetTrainable t = relay.transport.proto.SetTrainable.parseFrom(b);
                            return new StageActor.SetTrainable(t.getStep(), t.getTrainable());
                        }),
                new Codec<>("tgrad", StageActor.TiedGradient.class,
                        m -> tied(TiedTensor.Kind.GRADIENT, m.step(), m.gradient()),
                        b -> {
                            TiedTensor t = TiedTensor.parseFrom(b);
                            return new StageActor.TiedGradient(t.getStep(), TensorPayload.fromProto(t.getTensor()));
                        }),
                new Codec<>("tw", StageActor.TiedWeights.class,
                        m -> tied(TiedTensor.Kind.WEIGHTS, m.step(), m.weights()),
                        b -> {
                            TiedTensor t = TiedTensor.parseFrom(b);
                            return new StageActor.TiedWeights(t.getStep(), TensorPayload.fromProto(t.getTensor()));
                        }),
                new Codec<>("rep", Coordinator.Report.class,
                        m -> StageReport.newBuilder().setKind(StageReport.Kind.forNumber(m.kind().ordinal()))
                                .setStage(m.stage()).setStep(m.step()).setMicrobatch(m.microbatch()).setNormPass(m.normPass())
                                .setValue(m.value()).setReason(m.reason()).setStaleness(m.staleness())
                                .setBusyNanos(m.busyNanos()).build().toByteArray(),
                        b -> {
                            StageReport r = StageReport.parseFrom(b);
                            return new Coordinator.Report(Coordinator.Report.Kind.values()[r.getKindValue()], r.getStage(),
                                    r.getStep(), r.getMicrobatch(), r.getNormPass(), r.getValue(), r.getReason(),
                                    r.getStaleness(), r.getBusyNanos());
                        }));
    }
}
