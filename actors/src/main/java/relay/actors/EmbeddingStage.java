package relay.actors;

import java.util.ArrayList;
import java.util.List;
import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.model.Embedding;
import relay.stages.tensor.Device;
import relay.stages.tensor.Tensor;
import relay.transport.TensorPayload;

/**
 * The embedding stage: token ids in, activations out; in backward the gradient comes back and updates the
 * tables. With tied embeddings (GPT-2) it owns the token table's update: at the end of a pass it adds the
 * head's summed gradient part to its own, updates once, and sends the new table back to the head's replica.
 */
final class EmbeddingStage implements StageRole {
    private final Embedding embedding;
    private final Device device;
    private final StageOptimizer optimizer;
    private final boolean tied;
    /** The head's parts of the tied gradient, kept until this stage's own part is summed too. */
    private final List<StageCommand.TiedGradient> headParts = new ArrayList<>();
    private final TiedRows headRows;
    private boolean headComplete;
    private boolean awaitingTied;
    /** The tied table was updated in this pass (or is being, among replicas): the head gets it once settled. */
    private boolean tableForHead;

    EmbeddingStage(Embedding embedding, Device device, StageOptimizer optimizer, boolean tied) {
        this.embedding = embedding;
        this.device = device;
        this.optimizer = optimizer;
        this.tied = tied;
        this.headRows = new TiedRows(embedding.tokenTable().value().rows());
    }

    @Override
    public List<Parameter> parameters() {
        return embedding.parameters();
    }

    @Override
    public StageOptimizer optimizer() {
        return optimizer;
    }

    @Override
    public boolean takes(StageCommand c) {
        return c instanceof StageCommand.Tokens || c instanceof StageCommand.Backward || (tied && c instanceof StageCommand.TiedGradient);
    }

    @Override
    public void startPass(Position pass) {
        awaitingTied = false;
        tableForHead = false;
        optimizer.startPass();
    }

    @Override
    public boolean canForward(int j, Inbox in) {
        return in.tokens.containsKey(j);
    }

    @Override
    public void forward(Position pos, Inbox in, Outbox out) {
        int j = pos.microbatch();
        // The ids stay for the backward; an evaluation has none.
        StageCommand.Tokens t = pos.pass().backward() ? in.tokens.get(j) : in.tokens.remove(j);
        Tensor x = embedding.forward(t.ids(), pos.seq(), 0, t.positions());
        out.toNext(new StageCommand.Forward(pos, TensorPayload.of(x), t.positions()), pos);
    }

    @Override
    public void backward(Position pos, Inbox in, Outbox out) {
        int j = pos.microbatch();
        try (Tensor dOut = in.backwards.remove(j).gradient().materialize(device, Category.ACTIVATIONS)) {
            StageCommand.Tokens t = in.tokens.remove(j);
            embedding.backward(t.ids(), pos.seq(), t.positions(), dOut, optimizer.sink(pos));
        }
    }

    @Override
    public boolean finishPass(Position pass, Outbox out) {
        if (!pass.pass().backward()) return true;
        optimizer.finishPass(pass, out);
        awaitingTied = optimizer.exchangesTied();
        if (awaitingTied && headComplete) combineTied(pass, out);
        return completeShare(pass, out);
    }

    @Override
    public boolean tied(StageCommand m, Position pass, Outbox out) {
        StageCommand.TiedGradient part = (StageCommand.TiedGradient) m;
        headParts.add(part);
        headComplete = headRows.arrived(part.gradient().shape()[0]);
        if (awaitingTied && headComplete) combineTied(pass, out);
        return completeShare(pass, out);
    }

    /** Once the tied table is settled, an updating pass hands the head its new values. */
    @Override
    public boolean completeShare(Position pass, Outbox out) {
        if (awaitingTied || !optimizer.settled()) return false;
        if (tableForHead) {
            TiedRows.split(embedding.tokenTable().value(),
                    (row, part) -> out.toHead(new StageCommand.TiedWeights(pass.step(), row, TensorPayload.of(part)), pass));
            tableForHead = false;
        }
        return true;
    }

    /** The head's part and this stage's part of the tied gradient are both here: settled as one sum (updated once). */
    private void combineTied(Position pass, Outbox out) {
        for (StageCommand.TiedGradient p : headParts) {
            try (Tensor part = p.gradient().materialize(device, Category.COMMUNICATION)) {
                optimizer.addTiedPart(part, p.row());
            }
        }
        headParts.clear();
        headComplete = false;
        awaitingTied = false;
        tableForHead = pass.pass() == Pass.TRAIN;
        optimizer.finishTied(pass, out);
    }

    @Override
    public void discardPending() {
        headParts.forEach(p -> p.gradient().discard());
        headParts.clear();
        headRows.reset();
        headComplete = false;
        optimizer.discardPending();
    }

    @Override
    public void close() {
        discardPending();
        optimizer.close();
        embedding.parameters().forEach(Parameter::close);
    }
}
