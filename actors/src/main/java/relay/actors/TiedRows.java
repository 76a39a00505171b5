package relay.actors;

import java.util.function.BiConsumer;
import relay.stages.memory.Category;
import relay.stages.tensor.Tensor;

/**
 * A tied matrix (GPT-2's token table, 50257 × 768 floats: 147 MiB) crosses between the embedding and the head
 * in parts of whole rows, at most {@link TensorPart#MESSAGE_FLOATS} values each, so that no message between
 * nodes outgrows relay.cluster.max-message; the receiver counts rows until it has them all.
 */
final class TiedRows {
    private final int rows;
    private int received;

    TiedRows(int rows) {
        this.rows = rows;
    }

    /** Copies of the matrix's rows in parts of at most {@link TensorPart#MESSAGE_FLOATS} values, each with its first row. */
    static void split(Tensor matrix, BiConsumer<Integer, Tensor> send) {
        split(matrix, TensorPart.MESSAGE_FLOATS, send);
    }

    /**
     * Copies of the matrix's rows in parts of at most {@code floats} values (one row at least), each the message's to own,
     * in the matrix's own dtype (a bfloat16 table travels in half the bytes, its values as they are).
     */
    static void split(Tensor matrix, int floats, BiConsumer<Integer, Tensor> send) {
        int per = Math.max(1, floats / matrix.cols());
        for (int r = 0; r < matrix.rows(); r += per) {
            int to = Math.min(matrix.rows(), r + per);
            Tensor part = matrix.device().empty(Category.COMMUNICATION, matrix.dtype(), to - r, matrix.cols());
            matrix.device().copy(matrix.rowRange(r, to), part);
            send.accept(r, part);
        }
    }

    /** Counts a part's rows; returns whether the whole matrix has now arrived (and starts counting afresh). */
    boolean arrived(int partRows) {
        received += partRows;
        if (received < rows) return false;
        received = 0;
        return true;
    }

    /** A failed pass's parts were dropped: count afresh. */
    void reset() {
        received = 0;
    }
}
