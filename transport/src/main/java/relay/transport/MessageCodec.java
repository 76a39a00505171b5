package relay.transport;

import com.google.protobuf.InvalidProtocolBufferException;

/**
 * Converts the messages of one type — a record, or every record of a sealed protocol — to and from their
 * Protobuf bytes. Codecs are declared beside the protocols (in the actors module) and found through
 * {@link MessageCodecs} providers, so this module needs no knowledge of them.
 */
public interface MessageCodec<T extends WireMessage> {
    /** A short stable name written with every message to pick the codec on the way back. */
    String manifest();

    /** The type whose instances (and subtypes' instances) this codec writes. */
    Class<T> type();

    byte[] toBinary(T message);

    T fromBinary(byte[] bytes) throws InvalidProtocolBufferException;
}
