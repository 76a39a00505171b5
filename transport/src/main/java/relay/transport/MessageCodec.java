package relay.transport;

import com.google.protobuf.InvalidProtocolBufferException;
import java.nio.ByteBuffer;

/**
 * Writes the messages of one type — a record, or every record of a sealed protocol — to the wire and reads
 * them back: a Protobuf header, then the raw values of the tensors the message carries ({@link Frames}).
 * Codecs are declared beside the protocols (in the actors module) and found through {@link MessageCodecs}
 * providers, so this module needs no knowledge of them.
 */
public interface MessageCodec<T extends WireMessage> {
    /** A short stable name written with every message to pick the codec on the way back. */
    String manifest();

    /** The type whose instances (and subtypes' instances) this codec writes. */
    Class<T> type();

    /** The bytes the message takes on the wire. */
    int size(T message);

    /** The tensor whose values come last in the message, or null: a transport may write them from where they lie. */
    default TensorPayload payload(T message) {
        return null;
    }

    /** Writes everything of the message but the values of its {@link #payload}, at out's position. */
    void writeHead(T message, ByteBuffer out);

    /** Writes the message at out's position, which advances; a tensor it carries leaves its device here. */
    default void write(T message, ByteBuffer out) {
        writeHead(message, out);
        TensorPayload p = payload(message);
        if (p != null) p.writeTo(out);
    }

    /** Frees the tensor a message carries that will not be sent after all. */
    default void discard(T message) {
        TensorPayload p = payload(message);
        if (p != null) p.discard();
    }

    /** Reads a message that {@link #write} wrote, from in's position; bytes that are not one are an error. */
    T read(ByteBuffer in) throws InvalidProtocolBufferException;
}
