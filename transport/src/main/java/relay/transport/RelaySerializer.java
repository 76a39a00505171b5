package relay.transport;

import java.io.NotSerializableException;
import java.nio.ByteBuffer;
import java.util.HashMap;
import java.util.Map;
import java.util.ServiceLoader;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.serialization.ByteBufferSerializer;
import org.apache.pekko.serialization.SerializerWithStringManifest;

/**
 * Pekko's serializer for every {@link WireMessage}: a Protobuf header and raw tensor values ({@link Frames})
 * through the codecs that providers register. Artery writes and reads through the {@link ByteBuffer} methods,
 * straight into and out of its frame buffers.
 * Bind it in the configuration:
 * <pre>
 * pekko.actor.serializers.relay = "relay.transport.RelaySerializer"
 * pekko.actor.serialization-bindings { "relay.transport.WireMessage" = relay }
 * </pre>
 */
public final class RelaySerializer extends SerializerWithStringManifest implements ByteBufferSerializer {
    /** Pekko reserves ids 0–40. */
    public static final int IDENTIFIER = 4711;

    private final Map<String, MessageCodec<?>> byManifest = new HashMap<>();
    /** Each message class's codec: the codec of the type it is, or of the sealed protocol it belongs to. */
    private final ClassValue<MessageCodec<?>> byClass = new ClassValue<>() {
        @Override
        protected MessageCodec<?> computeValue(Class<?> type) {
            return byManifest.values().stream().filter(c -> c.type().isAssignableFrom(type)).findFirst().orElse(null);
        }
    };

    public RelaySerializer(ExtendedActorSystem system) {
        ActorSystem<?> typed = Adapter.toTyped(system);
        for (MessageCodecs provider : ServiceLoader.load(MessageCodecs.class, system.dynamicAccess().classLoader())) {
            for (MessageCodec<?> c : provider.codecs(typed)) {
                if (byManifest.put(c.manifest(), c) != null) throw new IllegalStateException("two codecs for " + c.manifest());
            }
        }
    }

    @Override
    public int identifier() {
        return IDENTIFIER;
    }

    private MessageCodec<?> codecOf(Object o) {
        MessageCodec<?> c = byClass.get(o.getClass());
        if (c == null) throw new IllegalArgumentException("no codec for " + o.getClass().getName());
        return c;
    }

    private MessageCodec<?> codecOf(String manifest) throws NotSerializableException {
        MessageCodec<?> c = byManifest.get(manifest);
        if (c == null) throw new NotSerializableException("unknown message manifest '" + manifest + "'");
        return c;
    }

    @Override
    public String manifest(Object o) {
        return codecOf(o).manifest();
    }

    /** The bytes a message takes on the wire. */
    @SuppressWarnings({"unchecked", "rawtypes"})
    public int size(Object o) {
        return ((MessageCodec) codecOf(o)).size((WireMessage) o);
    }

    /** The tensor whose values come last in the message, or null. */
    @SuppressWarnings({"unchecked", "rawtypes"})
    public TensorPayload payload(Object o) {
        return ((MessageCodec) codecOf(o)).payload((WireMessage) o);
    }

    /** Writes everything of a message but its payload's values. */
    @SuppressWarnings({"unchecked", "rawtypes"})
    public void writeHead(Object o, ByteBuffer buf) {
        ((MessageCodec) codecOf(o)).writeHead((WireMessage) o, buf);
    }

    /** Frees what a message that will not be sent carries. */
    @SuppressWarnings({"unchecked", "rawtypes"})
    public void discard(Object o) {
        ((MessageCodec) codecOf(o)).discard((WireMessage) o);
    }

    /** Artery's path: the message written straight into its frame buffer (tensors copied once, from device memory). */
    @Override
    @SuppressWarnings({"unchecked", "rawtypes"})
    public void toBinary(Object o, ByteBuffer buf) {
        ((MessageCodec) codecOf(o)).write((WireMessage) o, buf);
    }

    @Override
    @SuppressWarnings({"unchecked", "rawtypes"})
    public byte[] toBinary(Object o) {
        MessageCodec c = codecOf(o);
        ByteBuffer buf = ByteBuffer.allocate(c.size((WireMessage) o));
        c.write((WireMessage) o, buf);
        return buf.array();
    }

    @Override
    public Object fromBinary(ByteBuffer buf, String manifest) throws NotSerializableException {
        MessageCodec<?> c = codecOf(manifest);
        int bytes = buf.remaining();
        try {
            return c.read(buf);
        } catch (com.google.protobuf.InvalidProtocolBufferException | RuntimeException e) {
            NotSerializableException n = new NotSerializableException("malformed '" + manifest + "' message of " + bytes + " bytes: "
                    + e.getMessage());
            n.initCause(e);
            throw n;
        }
    }

    @Override
    public Object fromBinary(byte[] bytes, String manifest) throws NotSerializableException {
        return fromBinary(ByteBuffer.wrap(bytes), manifest);
    }
}
