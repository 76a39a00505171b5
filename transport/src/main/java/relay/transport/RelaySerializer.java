package relay.transport;

import java.io.NotSerializableException;
import java.util.HashMap;
import java.util.Map;
import java.util.ServiceLoader;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.serialization.SerializerWithStringManifest;

/**
 * Pekko's serializer for every {@link WireMessage}: Protobuf through the codecs that providers register.
 * Bind it in the configuration:
 * <pre>
 * pekko.actor.serializers.relay = "relay.transport.RelaySerializer"
 * pekko.actor.serialization-bindings { "relay.transport.WireMessage" = relay }
 * </pre>
 */
public final class RelaySerializer extends SerializerWithStringManifest {
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

    @Override
    public String manifest(Object o) {
        return codecOf(o).manifest();
    }

    @Override
    @SuppressWarnings({"unchecked", "rawtypes"})
    public byte[] toBinary(Object o) {
        return ((MessageCodec) codecOf(o)).toBinary((WireMessage) o);
    }

    @Override
    public Object fromBinary(byte[] bytes, String manifest) throws NotSerializableException {
        MessageCodec<?> c = byManifest.get(manifest);
        if (c == null) throw new NotSerializableException("unknown message manifest '" + manifest + "'");
        try {
            return c.fromBinary(bytes);
        } catch (com.google.protobuf.InvalidProtocolBufferException | RuntimeException e) {
            NotSerializableException n = new NotSerializableException("malformed '" + manifest + "' message of " + bytes.length
                    + " bytes: " + e.getMessage());
            n.initCause(e);
            throw n;
        }
    }
}
