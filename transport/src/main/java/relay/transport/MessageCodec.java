package relay.transport;

import com.google.protobuf.InvalidProtocolBufferException;

/**
 * Converts one message class to and from its Protobuf bytes. Codecs are declared beside the messages
 * (in the actors module) and found through {@link MessageCodecs} providers, so this module needs no
 * knowledge of the protocols.
 */
public interface MessageCodec<T extends WireMessage> {
    /** A short stable name written with every message to pick the codec on the way back. */
    String manifest();

    Class<T> type();

    byte[] toBinary(T message);

    T fromBinary(byte[] bytes) throws InvalidProtocolBufferException;
}
