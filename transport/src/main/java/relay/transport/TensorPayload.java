package relay.transport;

import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.util.Arrays;
import relay.stages.memory.Category;
import relay.stages.memory.MemoryLedger;
import relay.stages.tensor.Device;
import relay.stages.tensor.Tensor;

/**
 * A tensor inside a message. Within one JVM it is the sender's tensor itself, handed over: the receiver
 * owns it from then on (no copy when both sit on one device). On the wire — to another JVM, or under
 * Pekko's serialize-messages check — its values are copied straight from the sender's device memory into
 * the transport's buffer and the sender's tensor is freed at that moment; on arrival they are copied out of
 * the transport's buffer at once, and held, counted in this JVM's {@link #inFlight()} ledger as
 * communication, until the receiver takes them onto its device. Either way the receiver calls
 * {@link #materialize} (or {@link #copyInto}) exactly once, or {@link #discard}s the payload.
 */
public final class TensorPayload {
    private static final MemoryLedger IN_FLIGHT = new MemoryLedger();

    private Tensor local;
    private final int[] shape;
    private FloatBuffer landed;

    private TensorPayload(Tensor local, int[] shape, FloatBuffer landed) {
        this.local = local;
        this.shape = shape;
        this.landed = landed;
    }

    /** Bytes received by this JVM and not yet taken by their receivers: the communication memory of its transport. */
    public static MemoryLedger inFlight() {
        return IN_FLIGHT;
    }

    /** Hands an owning tensor over to the message; the sender must not touch it afterwards. */
    public static TensorPayload of(Tensor owned) {
        if (!owned.isOwner()) throw new IllegalArgumentException("only an owning tensor can travel: " + owned.describe());
        return new TensorPayload(owned, owned.shape(), null);
    }

    public int[] shape() {
        return shape.clone();
    }

    /** The bytes of the tensor's values, as they travel. */
    public long bytes() {
        return Tensor.sizeOf(shape) * Float.BYTES;
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
        FloatBuffer values = take();
        Tensor t = device.empty(category, shape);
        device.write(values, t);
        return t;
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
        dst.device().write(take(), dst);
    }

    /** The landed values, handed over once: they leave the in-flight ledger. */
    private FloatBuffer take() {
        if (landed == null) throw new IllegalStateException("tensor payload already taken");
        FloatBuffer v = landed;
        landed = null;
        IN_FLIGHT.released(Category.COMMUNICATION, bytes());
        return v;
    }

    /** Device to device when the target can read the source's memory, else through the host. */
    private static void copyAcross(Tensor src, Tensor dst) {
        try {
            dst.device().copy(src, dst);
        } catch (IllegalArgumentException notReadable) {
            dst.copyFrom(src.toArray());
        }
    }

    /** Frees what nobody took (a message dropped on failure). */
    public synchronized void discard() {
        if (local != null) {
            local.close();
            local = null;
        }
        if (landed != null) take();
    }

    /**
     * Writes the values to the wire at out's position (little-endian float32, straight from device memory);
     * a local tensor is freed: it has left this JVM.
     */
    public synchronized void writeTo(ByteBuffer out) {
        if (local != null) {
            try (Tensor t = local) {
                local = null;
                t.device().read(t, Frames.floats(out));
            }
        } else if (landed != null) {
            Frames.floats(out).put(landed.duplicate());
        } else {
            throw new IllegalStateException("tensor payload already taken");
        }
        out.position(out.position() + Math.toIntExact(bytes()));
    }

    /** A payload of this shape whose values follow at in's position (which advances past them); too few bytes is an error. */
    public static TensorPayload readFrom(int[] shape, ByteBuffer in) {
        for (int d : shape) {
            if (d < 0) throw new IllegalArgumentException("tensor of shape " + Arrays.toString(shape));
        }
        long n = Tensor.sizeOf(shape);
        try {
            Frames.check(n, in);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("tensor of shape " + Arrays.toString(shape) + " needs " + n * Float.BYTES
                    + " bytes, message carries " + in.remaining(), e);
        }
        FloatBuffer v = FloatBuffer.allocate(Math.toIntExact(n));
        v.put(Frames.floats(in).limit(Math.toIntExact(n))).flip();
        in.position(in.position() + Math.toIntExact(n) * Float.BYTES);
        IN_FLIGHT.allocated(Category.COMMUNICATION, n * Float.BYTES);
        return new TensorPayload(null, shape.clone(), v);
    }
}
