package relay.stages.tensor;

import relay.stages.memory.Category;
import relay.stages.memory.MemoryLedger;

/**
 * A place where tensors live and math runs: its memory (with exact per-category accounting)
 * and the kernels the layers need. Layers only ever call these operations, so a second backend
 * (a GPU) is one more implementation of this interface.
 *
 * <p>Matrices are row-major. Unless a method says "accumulate", it overwrites its output.
 * A device's work is meant to be issued from one thread at a time (its own actor or loop).
 */
public interface Device extends AutoCloseable {

    String name();

    MemoryLedger memory();

    /** Threads this device computes with (BLAS and the elementwise kernels). */
    int threads();

    /**
     * False for a device whose tensors hold no values (a simulated one): what would only compute values for it,
     * such as drawing initial weights, is skipped.
     */
    default boolean holdsValues() {
        return true;
    }

    /** A zero-filled float32 tensor, counted against {@code category}. */
    default Tensor allocate(Category category, int... shape) {
        return allocate(category, DType.F32, shape);
    }

    /** A float32 tensor whose contents are unspecified, for outputs that are overwritten whole. */
    default Tensor empty(Category category, int... shape) {
        return empty(category, DType.F32, shape);
    }

    /** A zero-filled tensor stored as {@code dtype}, counted at its bytes against {@code category}. */
    Tensor allocate(Category category, DType dtype, int... shape);

    /** A tensor stored as {@code dtype} whose contents are unspecified. */
    Tensor empty(Category category, DType dtype, int... shape);

    /** Frees the allocation of an owning tensor; called by {@link Tensor#close()}. */
    void free(Tensor owner);

    /** Stores the values (rounded to nearest where the tensor is bfloat16). */
    void upload(float[] src, Tensor dst);

    /** The values, widened to float32. */
    float[] download(Tensor src);

    /**
     * The tensor's values as little-endian bytes of its dtype in host memory, read in place without a copy (a message
     * being written straight from device memory); null when the device's memory cannot be seen so.
     */
    java.nio.ByteBuffer view(Tensor t);

    /**
     * A tensor whose memory is these little-endian bytes in host memory, taken over in place (a message's
     * values where the transport received them); freeing it runs {@code giveBack}. Null when this device
     * cannot use them so (its memory is elsewhere, or they are not aligned for it): the caller copies instead.
     */
    Tensor adopt(java.nio.ByteBuffer values, Category category, DType dtype, int[] shape, Runnable giveBack);

    /** Copies the tensor's values, widened to float32, into {@code dst} at its position, which advances. */
    void read(Tensor src, java.nio.FloatBuffer dst);

    /** Copies values from {@code src} at its position, which advances, into the tensor (rounded to nearest if bfloat16). */
    void write(java.nio.FloatBuffer src, Tensor dst);

    /**
     * dst = src, converting between dtypes (to nearest when narrowing); src may live on another device whose memory
     * this one can read (CPU devices of one process).
     */
    void copy(Tensor src, Tensor dst);

    /**
     * dst = src (float32) rounded stochastically to dst's bfloat16, element i with the random bits of
     * {@link Bf16#randomBits}(key, i): the write-back of an update, whose small steps must not vanish.
     */
    void roundStochastic(Tensor src, Tensor dst, long key);

    void fill(Tensor t, float value);

    // ---- matrix products ----

    /**
     * {@code C = alpha · op(A) · op(B) + beta · C} with op(A) m×k, op(B) k×n, C m×n; each matrix is
     * given as (tensor, element offset, leading dimension) so strided views (one attention head) need no copy.
     */
    void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
              Mat a, Mat b, float beta, Mat c);

    /**
     * {@code c[i] = alpha · op(a[i]) · op(b[i]) + beta · c[i]} for every i, products of one shape (attention's heads):
     * a device may run them side by side. Products into the same C run in their order; outputs otherwise do not overlap.
     */
    default void gemmBatch(boolean transA, boolean transB, int m, int n, int k, float alpha,
                           java.util.List<Mat> a, java.util.List<Mat> b, float beta, java.util.List<Mat> c) {
        for (int i = 0; i < c.size(); i++) gemm(transA, transB, m, n, k, alpha, a.get(i), b.get(i), beta, c.get(i));
    }

    // ---- elementwise and reductions ----

    /** out = a + b; out may be a or b. */
    void add(Tensor a, Tensor b, Tensor out);

    /** y += alpha · x. */
    void axpy(float alpha, Tensor x, Tensor y);

    void scale(Tensor x, float factor);

    /** Sum of squares of all elements, accumulated in double. */
    double sumOfSquares(Tensor x);

    /** y[r, :] += bias for every row r. */
    void addRowVector(Tensor y, Tensor bias);

    /** out = Σ_r x[r, :] (or out += when accumulate). */
    void sumRows(Tensor x, Tensor out, boolean accumulate);

    /** y = alpha·x + beta·y. */
    void axpby(float alpha, Tensor x, float beta, Tensor y);

    /** Clamps every element into [−limit, limit] in place (gradient clipping by value). */
    void clamp(Tensor x, float limit);

    // ---- optimizer updates (the rules themselves live in the optimizers module) ----

    /**
     * One AdamW step on a parameter: m = β1·m + (1−β1)·g, v = β2·v + (1−β2)·g²,
     * p −= lr·(m/c1) / (√(v/c2) + eps) + lr·decay·p, with c1, c2 the bias corrections.
     */
    void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
               float decay, float c1, float c2);

    /**
     * The factored second moment of a [rows, cols] gradient: r = β·r + (1−β)·Σ_j (g² + eps) and
     * c = β·c + (1−β)·Σ_i (g² + eps).
     */
    void factoredSecondMoment(Tensor grad, float eps, float beta, Tensor rowSums, Tensor colSums);

    /** u = g / √(r_i·c_j / Σr): the gradient scaled by the factored second moment. */
    void factoredScale(Tensor grad, Tensor rowSums, Tensor colSums, Tensor out);

    /** v = β·v + (1−β)·(g² + eps), then out = g / √v (an unfactored second moment, for vectors). */
    void secondMomentScale(Tensor grad, float eps, float beta, Tensor v, Tensor out);

    // ---- normalization ----

    /** LayerNorm over the last dimension; saves each row's mean and 1/std for backward. */
    void layerNorm(Tensor x, Tensor gain, Tensor bias, float eps, Tensor y, Tensor mean, Tensor rstd);

    /** dx += ∂ unless dx is null (a deferred weight gradient); dGain and dBias += theirs, unless null (frozen). */
    void layerNormBackward(Tensor dy, Tensor x, Tensor gain, Tensor mean, Tensor rstd,
                           Tensor dx, Tensor dGain, Tensor dBias);

    void rmsNorm(Tensor x, Tensor gain, float eps, Tensor y, Tensor rstd);

    /** dx += ∂ unless dx is null; dGain += its gradient unless null. */
    void rmsNormBackward(Tensor dy, Tensor x, Tensor gain, Tensor rstd, Tensor dx, Tensor dGain);

    // ---- activations ----

    /** GELU, tanh form (GPT-2's gelu_new). */
    void gelu(Tensor x, Tensor y);

    void geluBackward(Tensor x, Tensor dy, Tensor dx);

    /** out = silu(gate) · up. */
    void swiglu(Tensor gate, Tensor up, Tensor out);

    void swigluBackward(Tensor gate, Tensor up, Tensor dOut, Tensor dGate, Tensor dUp);

    // ---- attention pieces ----

    /**
     * Rotary embedding in place on a [tokens, heads·headDim] matrix of sequences of length seq
     * (position p = first + row mod seq, or first + positions[row] when position ids are given: packed examples
     * each count from 0), Hugging Face rotate-half layout, headDim = 2·inverseFrequencies.length:
     * element i of a head pairs with element i + headDim/2 and turns by p·inverseFrequencies[i], cos and sin
     * multiplied by {@code scale}. Inverse applies the transpose (the backward: scale·Rᵀ, not the inverse rotation
     * divided by scale). Position ids lie in [0, seq).
     */
    void rope(Tensor x, int seq, int heads, double[] inverseFrequencies, double scale, boolean inverse, int first, int[] positions);

    /**
     * Row-wise causal softmax in place on [groups, queries, keys] scores, the queries being the last of
     * the keys' positions: query i (position p = keys − queries + i) sees keys j with p − window &lt; j ≤ p,
     * every j ≤ p when window is 0; the rest become 0. Training has queries = keys; decoding with a cache has
     * fewer queries than keys.
     *
     * <p>Position ids (null: none) isolate packed examples: {@code positions} holds queries ids for each of n
     * sequences, the groups split evenly among them in order (a sequence's heads adjacent), and query i of a
     * sequence also sees no key before p − positions[i], the first token of its own example. Only for
     * queries = keys.
     */
    void causalSoftmax(Tensor scores, int queries, int keys, int window, int[] positions);

    /**
     * In place on [groups, queries, keys] as for {@link #causalSoftmax}, with the same visible keys: dP becomes
     * dS = P ⊙ (dP − rowsum(P ⊙ dP)), the gradient through softmax, over each row's visible keys; the rest of dS
     * becomes 0 (dP there is not read, so it need not have been computed).
     */
    void softmaxBackward(Tensor probs, Tensor dProbs, int queries, int keys, int window, int[] positions);

    // ---- embeddings and loss ----

    void embedding(int[] tokens, Tensor table, Tensor out);

    /** dTable[tokens[i]] += dOut[i] (scatter-add). */
    void embeddingBackward(int[] tokens, Tensor dOut, Tensor dTable);

    /** x[r, :] += table[first + r mod seq, :] (learned positions), or table[first + positions[r], :] with position ids. */
    void addPositions(Tensor x, Tensor table, int seq, int first, int[] positions);

    /** dTable[t, :] += Σ over rows r with r mod seq = t (or positions[r] = t with position ids) of dx[r, :], in row order. */
    void positionsBackward(Tensor dx, Tensor dTable, int seq, int[] positions);

    /**
     * Cross-entropy of each row of logits against targets[targetOffset + row]; returns the sum of the
     * rows' losses. When gradScale ≠ 0 the logits are replaced in place by gradScale · (softmax − onehot),
     * the gradient of gradScale · (sum of losses). A negative target marks a row that is not
     * counted (a prompt's token, padding): loss 0, gradient 0.
     */
    double crossEntropy(Tensor logits, int[] targets, int targetOffset, float gradScale);

    @Override
    void close();
}
