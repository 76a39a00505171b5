package relay.optimizers;

import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.tensor.Device;
import relay.stages.tensor.Mat;
import relay.stages.tensor.Tensor;

/**
 * GaLore (Zhao et al. 2024, arXiv 2403.03507) for the matrices it is given: the gradient G [m, n] is
 * projected to rank r — R = Pᵀ·G with P the top-r left singular vectors when m ≤ n, else R = G·P with
 * the right ones — Adam runs on R, and its step N is projected back: θ ← (1 − lr·λ)·θ − lr·α·P·N (or
 * N·Pᵀ). P is recomputed from the current gradient every {@code gap} updates (randomized subspace
 * iteration, see {@link TopSingularVectors}). State: P and Adam's moments on R, O((m+n)·r) not O(m·n).
 * Other parameters (vectors, or when rank ≥ min(m, n)) take plain AdamW.
 */
public final class GaLore implements UpdateRule {
    private final int rank;
    private final int gap;
    private final float scale;
    private final float weightDecay;
    private final long seed;
    private final AdamW adam;
    private final ParameterStates<Projector> projectors = new ParameterStates<>();
    private final java.util.function.Predicate<Parameter> projected;

    /** {@code projected} picks the matrices GaLore applies to (the paper: attention and MLP weights). */
    public GaLore(int rank, int gap, float scale, float beta1, float beta2, float eps, float weightDecay, long seed,
                  java.util.function.Predicate<Parameter> projected) {
        this.projected = projected;
        this.rank = rank;
        this.gap = gap;
        this.scale = scale;
        this.weightDecay = weightDecay;
        this.seed = seed;
        this.adam = new AdamW(beta1, beta2, eps, weightDecay);
    }

    static final class Projector implements AutoCloseable {
        final Tensor p;
        final boolean left;
        int updates;

        Projector(Tensor p, boolean left) {
            this.p = p;
            this.left = left;
        }

        @Override
        public void close() {
            p.close();
        }
    }

    private boolean projects(Tensor w) {
        return w.rank() == 2 && rank < Math.min(w.rows(), w.cols());
    }

    @Override
    public void apply(Parameter param, Tensor grad, float lr) {
        Tensor w = param.value();
        if (!projected.test(param) || !projects(w)) {
            adam.apply(param, grad, lr);
            return;
        }
        Device d = w.device();
        int m = w.rows(), n = w.cols();
        Projector pr = projectorOf(param);
        if (pr.updates % gap == 0) refresh(pr, grad, rank, seed + pr.updates * 7919L + param.name().hashCode());
        pr.updates++;
        int rr = pr.left ? rank : m, rc = pr.left ? n : rank;
        try (Tensor r = d.empty(Category.WORKSPACE, rr, rc); Tensor step = d.allocate(Category.WORKSPACE, rr, rc);
             Tensor full = d.empty(Category.WORKSPACE, m, n)) {
            if (pr.left) {
                d.gemm(true, false, rank, n, m, 1f, Mat.of(pr.p), Mat.of(grad), 0f, Mat.of(r));
            } else {
                d.gemm(false, false, m, rank, n, 1f, Mat.of(grad), Mat.of(pr.p), 0f, Mat.of(r));
            }
            // Adam with unit rate applied to a zero tensor leaves −N, the projected Adam step, in it.
            adam.step(param, step, r, 1f, 0f);
            if (pr.left) {
                d.gemm(false, false, m, n, rank, 1f, Mat.of(pr.p), Mat.of(step), 0f, Mat.of(full));
            } else {
                d.gemm(false, true, m, n, rank, 1f, Mat.of(step), Mat.of(pr.p), 0f, Mat.of(full));
            }
            float decay = param.decay() ? weightDecay : 0f;
            d.axpby(lr * scale, full, 1f - lr * decay, w);
        }
    }

    /** The projector of a [m, n] matrix: [m, r] of left singular vectors when m ≤ n, else [n, r] of right ones. */
    private Projector projectorOf(Parameter param) {
        Tensor w = param.value();
        boolean left = w.rows() <= w.cols();
        return projectors.get(param, k -> new Projector(
                w.device().empty(Category.OPTIMIZER_STATE, left ? w.rows() : w.cols(), rank), left));
    }

    private static void refresh(Projector pr, Tensor grad, int rank, long s) {
        pr.p.copyFrom(TopSingularVectors.toFloats(TopSingularVectors.of(grad, rank, !pr.left, s)));
    }

    /** The current projector of a parameter (for tests and inspection), or null. */
    Tensor projector(Parameter p) {
        Projector pr = projectors.get(p, k -> null);
        return pr == null ? null : pr.p;
    }

    @Override
    public java.util.Map<String, float[]> export() {
        java.util.Map<String, float[]> out = new java.util.TreeMap<>(adam.export());
        projectors.all().forEach((p, pr) -> {
            out.put(p.name() + "/projector", pr.p.toArray());
            out.put(p.name() + "/projector_updates", new float[] {pr.updates});
        });
        return out;
    }

    @Override
    public void restore(Parameter param, java.util.Map<String, float[]> exported) {
        Tensor w = param.value();
        int updates = ParameterStates.count(exported, param, "projector_updates");
        if (updates < 0) {
            adam.restore(param, exported);
            return;
        }
        Projector pr = projectorOf(param);
        pr.p.copyFrom(ParameterStates.exported(exported, param, "projector", pr.p.size()));
        pr.updates = updates;
        adam.restore(param, pr.left ? new int[] {rank, w.cols()} : new int[] {w.rows(), rank}, exported);
    }

    @Override
    public void release(Parameter p) {
        projectors.release(p);
        adam.release(p);
    }

    @Override
    public void close() {
        projectors.close();
        adam.close();
    }
}
