package relay.transport;

import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageLite;
import com.google.protobuf.Parser;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import relay.stages.tensor.Bf16;
import relay.stages.tensor.DType;
import relay.stages.tensor.Tensor;

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

    /**
     * Reads a length-prefixed header; in's position moves past it. The length is read here and only the
     * header's bytes are handed to Protobuf (which would otherwise copy all that follows out of a direct buffer).
     */
    public static <M> M readHeader(Parser<M> parser, ByteBuffer in) throws InvalidProtocolBufferException {
        int n = 0;
        for (int shift = 0; ; shift += 7) {
            if (!in.hasRemaining() || shift > 28) throw new InvalidProtocolBufferException("a message without a whole header length");
            byte b = in.get();
            n |= (b & 0x7f) << shift;
            if (b >= 0) break;
        }
        if (n < 0 || n > in.remaining()) throw new InvalidProtocolBufferException("a header of " + n + " bytes in " + in.remaining());
        byte[] header = new byte[n];
        in.get(header);
        return parser.parseFrom(header);
    }

    /** The float view of a wire buffer at its position: little-endian, whatever the machine's order. */
    static FloatBuffer floats(ByteBuffer b) {
        return b.duplicate().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    }

    /** Values of a dtype on the wire at b's position, as floats (bfloat16 widened, exactly). */
    static FloatBuffer values(ByteBuffer b, DType dtype) {
        if (dtype == DType.F32) return floats(b);
        java.nio.ShortBuffer s = b.duplicate().order(ByteOrder.LITTLE_ENDIAN).asShortBuffer();
        FloatBuffer out = FloatBuffer.allocate(s.remaining());
        for (int i = 0; i < out.capacity(); i++) out.put(i, Bf16.widen(s.get(i)));
        return out;
    }

    /** A tensor's values at out's position, which advances, as its dtype stores them (for a device whose memory cannot be seen). */
    static void putValues(Tensor t, ByteBuffer out) {
        float[] v = t.toArray();
        ByteBuffer o = out.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) {
            if (t.dtype() == DType.F32) o.putFloat(x);
            else o.putShort(Bf16.round(x));
        }
        out.position(o.position());
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

    private static void check(long floats, ByteBuffer in) {
        if (floats < 0 || floats * Float.BYTES > in.remaining()) {
            throw new IllegalArgumentException(floats + " values announced, " + in.remaining() + " bytes left in the message");
        }
    }
}
