package relay.transport;

import com.google.protobuf.ByteString;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import relay.stages.memory.Category;
import relay.stages.tensor.Device;
import relay.stages.tensor.Tensor;
import relay.transport.proto.TensorData;

/**
 * A tensor inside a message. Within one JVM it is the sender's tensor itself, handed over: the receiver
 * owns it from then on (no copy when both sit on one device). Serialized — across a JVM, or under
 * Pekko's serialize-messages check — it becomes bytes, and the sender's tensor is freed at that moment,
 * as it would be once sent over a wire. Either way the receiver calls {@link #materialize} exactly once.
 */
public final class TensorPayload {
    private Tensor local;
    private final int[] shape;
    private ByteString bytes;

    private TensorPayload(Tensor local, int[] shape, ByteString bytes) {
        this.local = local;
        this.shape = shape;
        this.bytes = bytes;
    }

    /** Hands an owning tensor over to the message; the sender must not touch it afterwards. */
    public static TensorPayload of(Tensor owned) {
        if (!owned.isOwner()) throw new IllegalArgumentException("only an owning tensor can travel: " + owned.describe());
        return new TensorPayload(owned, owned.shape(), null);
    }

    public int[] shape() {
        return shape.clone();
    }

    /** The tensor on {@code device}: the sender's own when it is already there, else a copy counted as {@code category}. */
    public synchronized Tensor materialize(Device device, Category category) {
        if (local != null) {
            Tensor t = local;
            local = null;
            if (t.device() == device && t.category() == category) return t;
            try (t) {
                Tensor copy = device.empty(category, shape);
                copyAcross(t, copy);
                return copy;
            }
        }
        if (bytes == null) throw new IllegalStateException("tensor payload already taken");
        FloatBuffer fb = bytes.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        bytes = null;
        float[] values = new float[fb.remaining()];
        fb.get(values);
        return device.empty(category, shape).copyFrom(values);
    }

    /** Writes the payload into an existing tensor of the same size (a replica being refreshed). */
    public synchronized void copyInto(Tensor dst) {
        if (local != null) {
            try (Tensor t = local) {
                local = null;
                copyAcross(t, dst);
            }
            return;
        }
        try (Tensor t = materialize(dst.device(), Category.COMMUNICATION)) {
            dst.device().copy(t, dst);
        }
    }

    /** Device to device when the target can read the source's memory, else through the host. */
    private static void copyAcross(Tensor src, Tensor dst) {
        try {
            dst.device().copy(src, dst);
        } catch (IllegalArgumentException notReadable) {
            dst.copyFrom(src.toArray());
        }
    }

    /** Frees the tensor if nobody took it (a message dropped on failure). */
    public synchronized void discard() {
        if (local != null) {
            local.close();
            local = null;
        }
    }

    /** To the wire: the local tensor's values as bytes, the tensor itself freed. */
    public synchronized TensorData toProto() {
        TensorData.Builder b = TensorData.newBuilder();
        for (int d : shape) b.addShape(d);
        if (local != null) {
            float[] values = local.toArray();
            ByteBuffer buf = ByteBuffer.allocate(values.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
            buf.asFloatBuffer().put(values);
            local.close();
            local = null;
            return b.setData(ByteString.copyFrom(buf.array())).build();
        }
        if (bytes == null) throw new IllegalStateException("tensor payload already taken");
        return b.setData(bytes).build();
    }

    public static TensorPayload fromProto(TensorData data) {
        int[] shape = data.getShapeList().stream().mapToInt(Integer::intValue).toArray();
        long n = Tensor.sizeOf(shape);
        if (data.getData().size() != n * Float.BYTES) {
            throw new IllegalArgumentException("tensor of shape " + java.util.Arrays.toString(shape) + " needs "
                    + n * Float.BYTES + " bytes, message carries " + data.getData().size());
        }
        return new TensorPayload(null, shape, data.getData());
    }
}
