package relay.actors;

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
    private StageCommand.TiedGradient headPart;
    private boolean awaitingTied;
    private double normSquared;

    EmbeddingStage(Embedding embedding, Device device, StageOptimizer optimizer, boolean tied) {
        this.embedding = embedding;
        this.device = device;
        this.optimizer = optimizer;
        this.tied = tied;
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
        normSquared = 0;
    }

    @Override
    public boolean canForward(int j, Inbox in) {
        return in.tokens.containsKey(j);
    }

    @Override
    public void forward(Position pos, Inbox in, Outbox out) {
        int j = pos.microbatch();
        // The ids stay for the backward; an evaluation has none.
        int[] ids = pos.pass().backward() ? in.tokens.get(j).ids() : in.tokens.remove(j).ids();
        out.toNext(new StageCommand.Forward(pos, TensorPayload.of(embedding.forward(ids, pos.seq()))), pos);
    }

    @Override
    public void backward(Position pos, Inbox in, Outbox out) {
        int j = pos.microbatch();
        try (Tensor dOut = in.backwards.remove(j).gradient().materialize(device, Category.ACTIVATIONS)) {
            embedding.backward(in.tokens.remove(j).ids(), pos.seq(), dOut, optimizer.sink(pos));
        }
    }

    @Override
    public boolean finishPass(Position pass, Outbox out) {
        if (!pass.pass().backward()) return true;
        normSquared = optimizer.finishPass(pass);
        if (!tied) return true;
        awaitingTied = true;
        return headPart != null && combineTied(pass, out);
    }

    @Override
    public boolean tied(StageCommand m, Position pass, Outbox out) {
        headPart = (StageCommand.TiedGradient) m;
        return awaitingTied && combineTied(pass, out);
    }

    /** The head's part and this stage's part of the tied gradient are both here: one update, and the new table to the head. */
    private boolean combineTied(Position pass, Outbox out) {
        try (Tensor part = headPart.gradient().materialize(device, Category.COMMUNICATION)) {
            headPart = null;
            normSquared += optimizer.finishTied(part, pass);
        }
        awaitingTied = false;
        if (pass.pass() == Pass.TRAIN) {
            Tensor table = embedding.tokenTable().value();
            Tensor copy = device.empty(Category.COMMUNICATION, table.shape());
            device.copy(table, copy);
            out.toHead(new StageCommand.TiedWeights(pass.step(), TensorPayload.of(copy)), pass);
        }
        return true;
    }

    @Override
    public double normSquared() {
        return normSquared;
    }

    @Override
    public void discardPending() {
        if (headPart != null) headPart.gradient().discard();
        headPart = null;
    }

    @Override
    public void close() {
        discardPending();
        optimizer.close();
        embedding.parameters().forEach(Parameter::close);
    }
}
