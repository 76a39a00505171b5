package relay.transport;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageLite;
import com.google.protobuf.Parser;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * The layout of a message on the wire: a length-prefixed Protobuf header, then raw little-endian float32
 * values (the tensors and arrays the header announces), copied in bulk straight between device memory and
 * the transport's buffer rather than encoded value by value.
 */
public final class Frames {
    private Frames() {}

    /** Bytes of a length-prefixed header. */
    public static int headerSize(MessageLite header) {
        int n = header.getSerializedSize();
        return CodedOutputStream.computeUInt32SizeNoTag(n) + n;
    }

    public static void writeHeader(MessageLite header, ByteBuffer out) {
        try {
            CodedOutputStream c = CodedOutputStream.newInstance(out);
            c.writeUInt32NoTag(header.getSerializedSize());
            header.writeTo(c);
            c.flush();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Reads a length-prefixed header; in's position moves past it. */
    public static <M> M readHeader(Parser<M> parser, ByteBuffer in) throws InvalidProtocolBufferException {
        CodedInputStream c = CodedInputStream.newInstance(in.duplicate());
        int n;
        try {
            n = c.readUInt32();
        } catch (InvalidProtocolBufferException e) {
            throw e;
        } catch (IOException e) {
            throw new InvalidProtocolBufferException(e);
        }
        if (n < 0 || n > in.remaining()) throw new InvalidProtocolBufferException("a header of " + n + " bytes in " + in.remaining());
        int start = c.getTotalBytesRead();
        ByteBuffer h = in.duplicate();
        h.position(in.position() + start).limit(in.position() + start + n);
        M header = parser.parseFrom(h);
        in.position(in.position() + start + n);
        return header;
    }

    /** The float view of a wire buffer at its position: little-endian, whatever the machine's order. */
    static FloatBuffer floats(ByteBuffer b) {
        return b.duplicate().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    }

    public static void writeFloats(float[] values, ByteBuffer out) {
        floats(out).put(values);
        out.position(out.position() + values.length * Float.BYTES);
    }

    /** Reads n floats; fewer bytes left than that is an error. */
    public static float[] readFloats(int n, ByteBuffer in) {
        check(n, in);
        float[] v = new float[n];
        floats(in).get(v);
        in.position(in.position() + n * Float.BYTES);
        return v;
    }

    static void check(long floats, ByteBuffer in) {
        if (floats < 0 || floats * Float.BYTES > in.remaining()) {
            throw new IllegalArgumentException(floats + " values announced, " + in.remaining() + " bytes left in the message");
        }
    }
}
