package relay.stages.tensor.sim;

import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import relay.stages.memory.Category;
import relay.stages.memory.MemoryLedger;
import relay.stages.tensor.DType;
import relay.stages.tensor.Device;
import relay.stages.tensor.Mat;
import relay.stages.tensor.Tensor;

/**
 * A device that holds no numbers: its tensors are sizes in its ledger and its kernels compute nothing, each adding
 * the time its {@link Roofline} gives to the device's modelled clock. The layers, stages and actors above it run
 * unchanged, so its ledger counts exactly what the same work allocates on a real device, and a pipeline of hundreds
 * of stages runs on one machine. With {@code pace} > 0 every kernel also waits that fraction of its modelled time,
 * so actors see their device busy as a real one would keep them (waits are gathered into sleeps of at least a
 * millisecond, the clock's own precision).
 *
 * <p>A loss on it is the loss of a uniform prediction, ln(vocabulary) per row, and every norm is 0: finite values
 * that let a step run to its end, not results.
 */
public final class SimDevice implements Device {
    private static final long MIN_SLEEP_NANOS = 1_000_000;

    private final String name;
    private final Roofline roofline;
    private final double pace;
    private final MemoryLedger memory = new MemoryLedger();
    private final AtomicLong modelledNanos = new AtomicLong();
    private final AtomicLong kernels = new AtomicLong();
    /** Time owed to the pace not yet slept (negative: slept ahead); touched by the device's one driving thread. */
    private long owedNanos;

    public SimDevice(String name, Roofline roofline, double pace) {
        if (!(pace >= 0)) throw new IllegalArgumentException("device " + name + ": pace must be ≥ 0, got " + pace);
        this.name = name;
        this.roofline = roofline;
        this.pace = pace;
    }

    /** The time this device's kernels would have taken, in nanoseconds, since it was made. */
    public long modelledNanos() {
        return modelledNanos.get();
    }

    /** Kernels run since the device was made. */
    public long kernels() {
        return kernels.get();
    }

    public Roofline roofline() {
        return roofline;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public MemoryLedger memory() {
        return memory;
    }

    @Override
    public int threads() {
        return 1;
    }

    @Override
    public boolean holdsValues() {
        return false;
    }

    @Override
    public Tensor allocate(Category category, DType dtype, int... shape) {
        long bytes = Tensor.sizeOf(shape) * dtype.bytes();
        memory.allocated(category, bytes);
        return Tensor.owning(this, category, dtype, new SimMemory(bytes), shape);
    }

    @Override
    public Tensor empty(Category category, DType dtype, int... shape) {
        return allocate(category, dtype, shape);
    }

    @Override
    public void free(Tensor owner) {
        if (!owner.isOwner()) throw new IllegalStateException("not an owning tensor: " + owner.describe());
        owner.memory().free();
        memory.released(owner.category(), owner.bytes());
    }

    /** A kernel of this many floating-point operations over this many bytes read and written. */
    private void kernel(double flops, double bytes) {
        long nanos = Math.round(roofline.seconds(flops, bytes) * 1e9);
        modelledNanos.addAndGet(nanos);
        kernels.incrementAndGet();
        if (pace == 0) return;
        owedNanos += Math.round(nanos * pace);
        if (owedNanos < MIN_SLEEP_NANOS) return;
        long t0 = System.nanoTime();
        LockSupport.parkNanos(owedNanos);
        owedNanos -= System.nanoTime() - t0;
    }

    /** An elementwise kernel touching {@code passes} tensors of x's size (a flop per element). */
    private void pointwise(Tensor x, int passes) {
        kernel(x.size(), (double) x.bytes() * passes);
    }

    @Override
    public void upload(float[] src, Tensor dst) {
        if (src.length != dst.size()) throw new IllegalArgumentException(src.length + " values for " + dst.describe());
    }

    @Override
    public float[] download(Tensor src) {
        return new float[Math.toIntExact(src.size())];
    }

    @Override
    public ByteBuffer view(Tensor t) {
        return null;
    }

    @Override
    public Tensor adopt(ByteBuffer values, Category category, DType dtype, int[] shape, Runnable giveBack) {
        return null;
    }

    @Override
    public void read(Tensor src, FloatBuffer dst) {
        dst.position(dst.position() + Math.toIntExact(src.size()));
    }

    @Override
    public void write(FloatBuffer src, Tensor dst) {
        int n = Math.toIntExact(dst.size());
        if (src.remaining() < n) throw new IllegalArgumentException(src.remaining() + " values for " + dst.describe());
        src.position(src.position() + n);
    }

    @Override
    public void copy(Tensor src, Tensor dst) {
        if (src.size() != dst.size()) throw new IllegalArgumentException("size mismatch: " + src.describe() + " vs " + dst.describe());
        if (!(src.memory() instanceof SimMemory)) throw new IllegalArgumentException("cannot copy from " + src.describe());
        pointwise(dst, 2);
    }

    @Override
    public void roundStochastic(Tensor src, Tensor dst, long key) {
        if (src.size() != dst.size()) throw new IllegalArgumentException("size mismatch: " + src.describe() + " vs " + dst.describe());
        pointwise(src, 2);
    }

    @Override
    public void fill(Tensor t, float value) {
        pointwise(t, 1);
    }

    @Override
    public void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, Mat a, Mat b, float beta, Mat c) {
        kernel(2.0 * m * n * k, (double) m * k * bytes(a) + (double) k * n * bytes(b) + (double) m * n * bytes(c) * (beta == 0 ? 1 : 2));
    }

    private static int bytes(Mat x) {
        return x.tensor().dtype().bytes();
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        pointwise(out, 3);
    }

    @Override
    public void axpy(float alpha, Tensor x, Tensor y) {
        pointwise(y, 3);
    }

    @Override
    public void scale(Tensor x, float factor) {
        pointwise(x, 2);
    }

    @Override
    public double sumOfSquares(Tensor x) {
        pointwise(x, 1);
        return 0;
    }

    @Override
    public void addRowVector(Tensor y, Tensor bias) {
        pointwise(y, 2);
    }

    @Override
    public void sumRows(Tensor x, Tensor out, boolean accumulate) {
        pointwise(x, 1);
    }

    @Override
    public void axpby(float alpha, Tensor x, float beta, Tensor y) {
        pointwise(y, 3);
    }

    @Override
    public void clamp(Tensor x, float limit) {
        pointwise(x, 2);
    }

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                      float decay, float c1, float c2) {
        kernel(12.0 * param.size(), 7.0 * param.bytes());
    }

    @Override
    public void factoredSecondMoment(Tensor grad, float eps, float beta, Tensor rowSums, Tensor colSums) {
        pointwise(grad, 1);
    }

    @Override
    public void factoredScale(Tensor grad, Tensor rowSums, Tensor colSums, Tensor out) {
        pointwise(grad, 2);
    }

    @Override
    public void secondMomentScale(Tensor grad, float eps, float beta, Tensor v, Tensor out) {
        pointwise(grad, 4);
    }

    @Override
    public void layerNorm(Tensor x, Tensor gain, Tensor bias, float eps, Tensor y, Tensor mean, Tensor rstd) {
        pointwise(x, 2);
    }

    @Override
    public void layerNormBackward(Tensor dy, Tensor x, Tensor gain, Tensor mean, Tensor rstd, Tensor dx, Tensor dGain, Tensor dBias) {
        pointwise(x, 4);
    }

    @Override
    public void rmsNorm(Tensor x, Tensor gain, float eps, Tensor y, Tensor rstd) {
        pointwise(x, 2);
    }

    @Override
    public void rmsNormBackward(Tensor dy, Tensor x, Tensor gain, Tensor rstd, Tensor dx, Tensor dGain) {
        pointwise(x, 4);
    }

    @Override
    public void gelu(Tensor x, Tensor y) {
        pointwise(x, 2);
    }

    @Override
    public void geluBackward(Tensor x, Tensor dy, Tensor dx) {
        pointwise(x, 4);
    }

    @Override
    public void swiglu(Tensor gate, Tensor up, Tensor out) {
        pointwise(out, 3);
    }

    @Override
    public void swigluBackward(Tensor gate, Tensor up, Tensor dOut, Tensor dGate, Tensor dUp) {
        pointwise(dOut, 5);
    }

    @Override
    public void rope(Tensor x, int seq, int heads, double[] inverseFrequencies, double scale, boolean inverse, int first, int[] positions) {
        pointwise(x, 2);
    }

    @Override
    public void causalSoftmax(Tensor scores, int queries, int keys, int window, int[] positions) {
        pointwise(scores, 2);
    }

    @Override
    public void softmaxBackward(Tensor probs, Tensor dProbs, int queries, int keys, int window, int[] positions) {
        pointwise(probs, 3);
    }

    @Override
    public void embedding(int[] tokens, Tensor table, Tensor out) {
        pointwise(out, 2);
    }

    @Override
    public void embeddingBackward(int[] tokens, Tensor dOut, Tensor dTable) {
        pointwise(dOut, 3);
    }

    @Override
    public void addPositions(Tensor x, Tensor table, int seq, int first, int[] positions) {
        pointwise(x, 3);
    }

    @Override
    public void positionsBackward(Tensor dx, Tensor dTable, int seq, int[] positions) {
        pointwise(dx, 3);
    }

    @Override
    public double crossEntropy(Tensor logits, int[] targets, int targetOffset, float gradScale) {
        pointwise(logits, gradScale != 0 ? 2 : 1);
        return logits.rows() * Math.log(logits.cols());
    }

    @Override
    public void close() {}

    @Override
    public String toString() {
        return "simulated device " + name + " (" + roofline + ", pace " + pace + ")";
    }
}
