package relay.stages.bench;

/** One matrix product C[m,n] = op(A)·op(B) with inner dimension k. */
public record GemmShape(String label, boolean transA, boolean transB, int m, int n, int k) {
    public double flops() {
        return 2.0 * m * n * k;
    }

    @Override
    public String toString() {
        return label + " " + m + "x" + n + "x" + k + (transA ? " Aᵀ" : "") + (transB ? " Bᵀ" : "");
    }
}
