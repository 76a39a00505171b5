package relay.transport;

import java.nio.ByteBuffer;
import java.util.List;
import org.apache.pekko.actor.typed.ActorSystem;
import relay.transport.proto.TensorData;

/** A test protocol of one message, a tensor, registered like the real ones: its shape as the header, its values raw after it. */
public final class EchoCodecs implements MessageCodecs {
    /** A message carrying a tensor. */
    public record Echo(TensorPayload tensor) implements WireMessage {}

    private static TensorData header(Echo m) {
        TensorData.Builder b = TensorData.newBuilder();
        for (int d : m.tensor().shape()) b.addShape(d);
        b.setDtype(relay.transport.proto.DType.valueOf(m.tensor().dtype().name()));
        return b.build();
    }

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
            public int size(Echo m) {
                return Math.toIntExact(Frames.headerSize(header(m)) + m.tensor().bytes());
            }

            @Override
            public TensorPayload payload(Echo m) {
                return m.tensor();
            }

            @Override
            public void writeHead(Echo m, ByteBuffer out) {
                Frames.writeHeader(header(m), out);
            }

            @Override
            public Echo read(ByteBuffer in) throws com.google.protobuf.InvalidProtocolBufferException {
                TensorData h = Frames.readHeader(TensorData.parser(), in);
                return new Echo(TensorPayload.readFrom(h.getShapeList().stream().mapToInt(Integer::intValue).toArray(),
                        relay.stages.tensor.DType.valueOf(h.getDtype().name()), in));
            }
        });
    }
}
