package relay.transport;

import java.nio.ByteBuffer;
import java.util.Arrays;
import relay.stages.memory.Category;
import relay.stages.memory.MemoryLedger;
import relay.stages.tensor.DType;
import relay.stages.tensor.Device;
import relay.stages.tensor.Tensor;

/**
 * A tensor inside a message. Within one JVM it is the sender's tensor itself, handed over: the receiver
 * owns it from then on (no copy when both sit on one device). On the wire — to another JVM, or under
 * Pekko's serialize-messages check — its values are copied straight from the sender's device memory into
 * the transport's buffer and the sender's tensor is freed at that moment. On arrival they stay where they
 * landed, counted in this JVM's {@link #inFlight()} ledger as communication, until the receiver takes them
 * onto its device: a CPU device takes a buffer the transport lends ({@link #lending}) as it is, anything
 * else is copied. Either way the receiver calls {@link #materialize} (or {@link #copyInto}) exactly once, or
 * {@link #discard}s the payload.
 */
public final class TensorPayload {
    private static final MemoryLedger IN_FLIGHT = new MemoryLedger();
    /** Set while a transport reads a buffer it lends: the payload read from it keeps its bytes there. */
    private static final ThreadLocal<Loan> LENT = new ThreadLocal<>();

    /**
     * A transport's receive buffer lent to the payload read from it: {@code taken} runs once the values are
     * taken off the wire's hands (onto a device, or dropped), {@code giveBack} once the buffer is free again —
     * at the same moment when they were copied, when the tensor is freed when a device took the buffer as it is.
     */
    public record Loan(Runnable taken, Runnable giveBack) {}

    private Tensor local;
    private final int[] shape;
    private final DType dtype;
    private ByteBuffer landed;
    private Loan loan;

    private TensorPayload(Tensor local, int[] shape, DType dtype, ByteBuffer landed, Loan loan) {
        this.local = local;
        this.shape = shape;
        this.dtype = dtype;
        this.landed = landed;
        this.loan = loan;
    }

    /** Bytes received by this JVM and not yet taken by their receivers: the communication memory of its transport. */
    public static MemoryLedger inFlight() {
        return IN_FLIGHT;
    }

    /** Hands an owning tensor over to the message; the sender must not touch it afterwards. */
    public static TensorPayload of(Tensor owned) {
        if (!owned.isOwner()) throw new IllegalArgumentException("only an owning tensor can travel: " + owned.describe());
        return new TensorPayload(owned, owned.shape(), owned.dtype(), null, null);
    }

    public int[] shape() {
        return shape.clone();
    }

    /** How the values travel and arrive: the sender's tensor's dtype. */
    public DType dtype() {
        return dtype;
    }

    /** The bytes of the tensor's values, as they travel. */
    public long bytes() {
        return Tensor.sizeOf(shape) * dtype.bytes();
    }

    /**
     * Values that came over the wire are taken onto {@code device} now (where they landed, when the device can
     * keep the buffer), freeing the transport to read on; {@link #materialize} with the same device and category
     * then hands this tensor over. A receiver that keeps messages for later lands them first: the transport holds
     * back a sender while its frames are untaken, and a message waiting behind them would never come.
     */
    public synchronized void land(Device device, Category category) {
        if (landed != null) local = materialize(device, category);
    }

    /** The tensor on {@code device}: the sender's own when it is already there, else a copy counted as {@code category}. */
    public synchronized Tensor materialize(Device device, Category category) {
        if (local == null && landed == null) throw new IllegalStateException("tensor payload already taken");
        if (local != null) {
            Tensor t = local;
            local = null;
            if (t.device() == device && t.category() == category) return t;
            try (t) {
                Tensor copy = device.empty(category, dtype, shape);
                copyAcross(t, copy);
                return copy;
            }
        }
        ByteBuffer values = landed;
        if (loan != null) {
            // The device takes the values where they landed; the buffer goes back to the transport when the tensor is freed.
            Tensor adopted = device.adopt(values, category, dtype, shape, loan.giveBack());
            if (adopted != null) {
                take(false);
                return adopted;
            }
        }
        Tensor t = device.empty(category, dtype, shape);
        try {
            device.write(Frames.values(values, dtype), t);
        } finally {
            take();
        }
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
        if (landed == null) throw new IllegalStateException("tensor payload already taken");
        try {
            dst.device().write(Frames.values(landed, dtype), dst);
        } finally {
            take();
        }
    }

    private void take() {
        take(true);
    }

    /**
     * The landed values are taken (or dropped): they leave the in-flight ledger, the transport learns it, and
     * its buffer goes back to it unless a device keeps it.
     */
    private void take(boolean giveBack) {
        if (landed == null) throw new IllegalStateException("tensor payload already taken");
        landed = null;
        IN_FLIGHT.released(Category.COMMUNICATION, bytes());
        if (loan != null) {
            loan.taken().run();
            if (giveBack) loan.giveBack().run();
            loan = null;
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

    /** Frees what nobody took (a message dropped on failure). */
    public synchronized void discard() {
        if (local != null) {
            local.close();
            local = null;
        }
        if (landed != null) take();
    }

    /**
     * Writes the values to the wire at out's position (little-endian values of the dtype, straight from device
     * memory where it can be seen); a local tensor is freed: it has left this JVM.
     */
    public synchronized void writeTo(ByteBuffer out) {
        if (local != null) {
            try (Tensor t = local) {
                local = null;
                ByteBuffer v = t.device().view(t);
                if (v != null) out.put(v);
                else Frames.putValues(t, out);
            }
        } else if (landed != null) {
            out.put(landed.duplicate());
        } else {
            throw new IllegalStateException("tensor payload already taken");
        }
    }

    /**
     * The values as little-endian bytes to write as they are, without a copy where the device allows (a CPU
     * device's memory), else copied once; valid until the payload is {@link #discard}ed after the write.
     */
    public synchronized ByteBuffer view() {
        if (local != null) {
            ByteBuffer v = local.device().view(local);
            if (v != null) return v;
            ByteBuffer copy = ByteBuffer.allocateDirect(Math.toIntExact(bytes()));
            Frames.putValues(local, copy);
            return copy.flip();
        }
        if (landed != null) return landed.duplicate();
        throw new IllegalStateException("tensor payload already taken");
    }

    /**
     * Runs {@code read} over a buffer the transport lends: a payload read from it keeps its bytes there, with
     * no copy, under {@code loan}. Returns whether a payload took the loan (else the buffer is the transport's again).
     */
    public static boolean lending(Loan loan, Runnable read) {
        LENT.set(loan);
        try {
            read.run();
            return LENT.get() == null;
        } finally {
            LENT.remove();
        }
    }

    /** A payload of this shape whose values follow at in's position (which advances past them); too few bytes is an error. */
    public static TensorPayload readFrom(int[] shape, DType dtype, ByteBuffer in) {
        for (int d : shape) {
            if (d < 0) throw new IllegalArgumentException("tensor of shape " + Arrays.toString(shape));
        }
        long n = Tensor.sizeOf(shape);
        if (n * dtype.bytes() > in.remaining()) {
            throw new IllegalArgumentException(dtype.key() + " tensor of shape " + Arrays.toString(shape) + " needs "
                    + n * dtype.bytes() + " bytes, message carries " + in.remaining());
        }
        int bytes = Math.toIntExact(n * dtype.bytes());
        Loan loan = LENT.get();
        ByteBuffer landing;
        if (loan != null) {
            LENT.remove();
            landing = in.slice(in.position(), bytes);
        } else {
            landing = ByteBuffer.allocate(bytes).put(in.duplicate().limit(in.position() + bytes)).flip();
        }
        in.position(in.position() + bytes);
        IN_FLIGHT.allocated(Category.COMMUNICATION, bytes);
        return new TensorPayload(null, shape.clone(), dtype, landing.order(java.nio.ByteOrder.LITTLE_ENDIAN), loan);
    }
}
