package relay.actors;

import java.util.List;
import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.model.LmHead;
import relay.stages.tensor.Device;
import relay.stages.tensor.Tensor;
import relay.transport.TensorPayload;

/**
 * The head: final norm, projection to the vocabulary and the loss, with its backward fused into its forward
 * (no [tokens, vocab] buffer ever exists), so it only runs forwards. With tied embeddings it keeps a replica
 * of the token table: it sums its gradient part over the pass, sends it to the embedding, which updates the
 * table, and takes the new table back.
 */
final class HeadStage implements StageRole {
    private final LmHead head;
    private final Device device;
    private final StageOptimizer optimizer;
    private final boolean tied;
    /** Replicas of the pipeline: each microbatch's loss is scaled by 1 / (microbatches × replicas), a share of the global batch's mean. */
    private final int replicas;
    private final TiedRows tableRows;
    /** An updating pass sent its tied gradient and waits for the new table. */
    private boolean awaitingTable;

    HeadStage(LmHead head, Device device, StageOptimizer optimizer, boolean tied, int replicas) {
        this.head = head;
        this.device = device;
        this.optimizer = optimizer;
        this.tied = tied;
        this.replicas = replicas;
        this.tableRows = new TiedRows(head.weight().value().rows());
    }

    @Override
    public List<Parameter> parameters() {
        return head.parameters(true);
    }

    /** Everything but a tied table's replica, whose update the embedding owns. */
    @Override
    public List<Parameter> updated() {
        return tied ? head.parameters(false) : head.parameters(true);
    }

    @Override
    public StageOptimizer optimizer() {
        return optimizer;
    }

    @Override
    public boolean takes(StageCommand c) {
        return c instanceof StageCommand.Forward || c instanceof StageCommand.Targets || (tied && c instanceof StageCommand.TiedWeights);
    }

    @Override
    public void startPass(Position pass) {
        awaitingTable = false;
        optimizer.startPass();
    }

    @Override
    public boolean canForward(int j, Inbox in) {
        return in.forwards.containsKey(j) && in.targets.containsKey(j);
    }

    /** Loss and, unless evaluating, backward at once: the input gradient goes upstream, the loss to the coordinator. */
    @Override
    public void forward(Position pos, Inbox in, Outbox out) {
        int j = pos.microbatch();
        StageCommand.Targets targets = in.targets.remove(j);
        int[] y = targets.ids();
        // A share's loss and gradient weigh as many of the pass's targets as the share counts (see Targets#weight).
        float weight = targets.weight(replicas);
        LmHead.Result r;
        try (Tensor x = in.forwards.remove(j).activation().materialize(device, Category.ACTIVATIONS)) {
            if (pos.pass() == Pass.EVAL) {
                out.loss(pos, weight * head.loss(x, y));
                return;
            }
            r = head.lossAndBackward(x, y, weight / (pos.microbatches() * replicas), optimizer.sink(pos));
        }
        if (!Double.isFinite(r.loss())) {
            r.dx().close();
            throw new ArithmeticException("loss is " + r.loss());
        }
        out.toPrevious(new StageCommand.Backward(pos, TensorPayload.of(r.dx())), pos);
        if (pos.pass() == Pass.TRAIN) out.loss(pos, weight * r.loss());
    }

    @Override
    public void backward(Position pos, Inbox in, Outbox out) {
        throw new IllegalStateException("the head's backward is fused into its forward");
    }

    /** With a tied table, its summed gradient part goes to the embedding; an updating pass then waits for the new table. */
    @Override
    public boolean finishPass(Position pass, Outbox out) {
        if (!pass.pass().backward()) return true;
        optimizer.finishPass(pass, out);
        if (optimizer.exchangesTied()) {
            try (Tensor sum = optimizer.takeTiedSum()) {
                TiedRows.split(sum, (row, part) -> out.toEmbedding(new StageCommand.TiedGradient(pass.step(), row, TensorPayload.of(part)), pass));
            }
            awaitingTable = pass.pass() == Pass.TRAIN;
        }
        return completeShare(pass, out);
    }

    @Override
    public boolean completeShare(Position pass, Outbox out) {
        return !awaitingTable && optimizer.settled();
    }

    /** The updated table replaces the replica, part by part; the pass's share is complete with the last row. */
    @Override
    public boolean tied(StageCommand m, Position pass, Outbox out) {
        StageCommand.TiedWeights part = (StageCommand.TiedWeights) m;
        int rows = part.weights().shape()[0];
        part.weights().copyInto(head.weight().value().rowRange(part.row(), part.row() + rows));
        if (tableRows.arrived(rows)) awaitingTable = false;
        return completeShare(pass, out);
    }

    @Override
    public void discardPending() {
        tableRows.reset();
        optimizer.discardPending();
    }

    @Override
    public void close() {
        optimizer.close();
        head.parameters(true).forEach(Parameter::close);
    }
}
