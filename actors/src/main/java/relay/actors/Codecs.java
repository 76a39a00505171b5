package relay.actors;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageLite;
import com.google.protobuf.Parser;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorSystem;
import relay.transport.Frames;
import relay.transport.MessageCodec;
import relay.transport.MessageCodecs;
import relay.transport.TensorPayload;
import relay.transport.WireMessage;
import relay.transport.proto.CoordinatorCommand;
import relay.transport.proto.Empty;
import relay.transport.proto.HostCommand;

/**
 * The wire form of every protocol of the actors: one codec per protocol (stage commands, stage events,
 * coordinator commands and replies, host commands and replies). Each message is a Protobuf header and then
 * the raw values of the tensors and tensor parts it announces ({@link Frames}), so an activation goes from
 * device memory to the transport's buffer in one copy. Each family's headers are built and read by its own
 * class ({@link StageCommandWire}, {@link StageEventWire}, {@link CoordinatorWire}, {@link HostWire}). Decoding
 * switches over the oneof of the protocol's header, so the compiler checks that every case is read; encoding
 * covers every record of the sealed protocol, which the round-trip tests check for each permitted type.
 */
public final class Codecs implements MessageCodecs {

    @Override
    public List<MessageCodec<?>> codecs(ActorSystem<?> system) {
        Wire w = new Wire(system);
        return List.of(
                new Protocol<>("s", StageCommand.class, relay.transport.proto.StageCommand.parser(), c -> StageCommandWire.stageCommand(c, w),
                        Codecs::raw, Codecs::writeParts, (p, in) -> StageCommandWire.stageCommand(p, in, w)),
                new Protocol<>("e", StageEvent.class, relay.transport.proto.StageEvent.parser(), e -> StageEventWire.stageEvent(e, w),
                        Codecs::raw, Codecs::writeParts, (p, in) -> StageEventWire.stageEvent(p, in, w)),
                new Protocol<>("c", Coordinator.Command.class, CoordinatorCommand.parser(), c -> CoordinatorWire.coordinatorCommand(c, w),
                        Codecs::raw, Codecs::writeParts, (p, in) -> CoordinatorWire.coordinatorCommand(p, in, w)),
                new Protocol<>("r", Coordinator.StepResult.class, relay.transport.proto.StepResult.parser(), CoordinatorWire::stepResult,
                        r -> 0L, (r, out) -> { }, (p, in) -> CoordinatorWire.stepResult(p)),
                new Protocol<>("g", Coordinator.Gathered.class, relay.transport.proto.Gathered.parser(), g -> CoordinatorWire.gathered(g, w),
                        Codecs::raw, Codecs::writeParts, (p, in) -> CoordinatorWire.gathered(p, in, w)),
                new Protocol<>("h", StageHost.Command.class, HostCommand.parser(), c -> HostWire.hostCommand(c, w), Codecs::raw,
                        Codecs::writeParts, (p, in) -> HostWire.hostCommand(p, in, w)),
                new Protocol<>("m", StageHost.DeviceMemory.class, relay.transport.proto.DeviceMemory.parser(), HostWire::memory,
                        m -> 0L, (m, out) -> { }, (p, in) -> HostWire.memory(p)),
                new Protocol<>("p", StageHost.Pong.class, Empty.parser(), m -> Empty.getDefaultInstance(), m -> 0L, (m, out) -> { },
                        (p, in) -> new StageHost.Pong()));
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

    static IllegalArgumentException unknown(Object m) {
        return new IllegalArgumentException("no wire form for " + m.getClass().getName());
    }

    // The raw values after a header: a tensor payload, or tensor parts.

    /** The tensor a message carries, or null. */
    private static TensorPayload payload(Object m) {
        if (m instanceof StageCommand.Forward f) return f.activation();
        if (m instanceof StageCommand.Backward b) return b.gradient();
        if (m instanceof StageCommand.TiedGradient t) return t.gradient();
        if (m instanceof StageCommand.TiedWeights t) return t.weights();
        if (m instanceof StageCommand.ReplicaGradient r) return r.gradient();
        if (m instanceof StageCommand.ReplicaWeights r) return r.weights();
        return null;
    }

    /** The tensor parts a message carries (none for most). */
    private static List<TensorPart> parts(Object m) {
        if (m instanceof StageCommand.RestoreState r) return r.parts();
        if (m instanceof StageCommand.RestoreSnapshot r) return r.parts();
        if (m instanceof StageHost.HoldSnapshot h) return h.parts();
        if (m instanceof StageEvent.Weights w) return w.parts();
        if (m instanceof StageEvent.OptimizerState o) return o.parts();
        if (m instanceof Coordinator.Restore r) return CoordinatorWire.restoreParts(r);
        if (m instanceof Coordinator.Gathered g) return g.events().stream().flatMap(e -> parts(e).stream()).toList();
        return List.of();
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
}
