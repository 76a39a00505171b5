package relay.transport;

import java.util.List;
import org.apache.pekko.actor.typed.ActorSystem;
import relay.transport.proto.TensorData;

/** A test protocol of one message, a tensor, registered like the real ones. */
public final class EchoCodecs implements MessageCodecs {
    /** A message carrying a tensor. */
    public record Echo(TensorPayload tensor) implements WireMessage {}

    @Override
    public List<MessageCodec<?>> codecs(ActorSystem<?> system) {
        return List.of(new MessageCodec<Echo>() {
            @Override
            public String manifest() {
                return "echo";
            }

            @Override
            public Class<Echo> type() {
                return Echo.class;
            }

            @Override
            public byte[] toBinary(Echo m) {
                return m.tensor().toProto().toByteArray();
            }

            @Override
            public Echo fromBinary(byte[] bytes) throws com.google.protobuf.InvalidProtocolBufferException {
                return new Echo(TensorPayload.fromProto(TensorData.parseFrom(bytes)));
            }
        });
    }
}
