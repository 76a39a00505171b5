package relay.stages.tensor;

/** A row-major matrix inside a tensor: element (i, j) is at offset + i·ld + j. */
public record Mat(Tensor tensor, long offset, int ld) {

    /** The whole tensor as a matrix of its last dimension's width. */
    public static Mat of(Tensor t) {
        return new Mat(t, 0, t.cols());
    }

    /** A block of columns starting at column {@code col} (one attention head, or q out of qkv). */
    public static Mat columns(Tensor t, long rowOffset, int col) {
        return new Mat(t, rowOffset * t.cols() + col, t.cols());
    }
}
