package relay.actors;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import relay.stages.layers.GradientSink;
import relay.stages.layers.Parameter;
import relay.stages.layers.TransformerBlock;
import relay.stages.memory.Category;
import relay.stages.tensor.Device;
import relay.stages.tensor.Tensor;
import relay.transport.TensorPayload;

/**
 * One transformer block: it keeps what a microbatch's backward needs from its forward, and in backward
 * hands each weight gradient to its optimizer (applied at once in eager mode) unless LISA froze it, in which
 * case it computes no weight gradient at all.
 */
final class BlockStage implements StageRole {
    private final TransformerBlock block;
    private final Device device;
    private final StageOptimizer optimizer;
    private final Map<Integer, Saved> saved = new HashMap<>();
    /** Backward messages whose gradients this block applied at once (eager mode); staleness counts these. */
    private long updatesApplied;
    private long staleness;
    private double normSquared;

    /** What a block keeps from a microbatch's forward to its backward, and how many updates it had seen. */
    private record Saved(Tensor input, TransformerBlock.Forward forward, long updatesAtForward) {}

    BlockStage(TransformerBlock block, Device device, StageOptimizer optimizer) {
        this.block = block;
        this.device = device;
        this.optimizer = optimizer;
    }

    @Override
    public List<Parameter> parameters() {
        return block.parameters();
    }

    @Override
    public StageOptimizer optimizer() {
        return optimizer;
    }

    @Override
    public boolean takes(StageCommand c) {
        return c instanceof StageCommand.Forward || c instanceof StageCommand.Backward || c instanceof StageCommand.SetTrainable;
    }

    @Override
    public void startPass(Position pass) {
        staleness = 0;
        normSquared = 0;
    }

    /** LISA: the block trains from now on, or is frozen and its optimizer state is freed. */
    void setTrainable(boolean trainable) {
        if (block.trainable() && !trainable) optimizer.release(block.parameters());
        block.setTrainable(trainable);
    }

    @Override
    public boolean canForward(int j, Inbox in) {
        return in.forwards.containsKey(j);
    }

    @Override
    public void forward(Position pos, Inbox in, Outbox out) {
        int j = pos.microbatch();
        Tensor x = in.forwards.remove(j).activation().materialize(device, Category.ACTIVATIONS);
        TransformerBlock.Forward f;
        if (pos.pass().backward()) {
            f = block.forward(x, pos.batch(), pos.seq());
            saved.put(j, new Saved(x, f, updatesApplied));
        } else {
            try (x) {
                f = block.forward(x, pos.batch(), pos.seq());
            }
            f.saved().close();
        }
        out.toNext(new StageCommand.Forward(pos, TensorPayload.of(f.output())), pos);
    }

    @Override
    public void backward(Position pos, Inbox in, Outbox out) {
        int j = pos.microbatch();
        Tensor dx;
        try (Tensor dOut = in.backwards.remove(j).gradient().materialize(device, Category.ACTIVATIONS)) {
            Saved s = saved.remove(j);
            staleness = Math.max(staleness, updatesApplied - s.updatesAtForward());
            GradientSink sink = block.trainable() ? optimizer.sink(pos) : null;
            try {
                dx = block.backward(s.forward(), dOut, sink);
            } finally {
                s.input().close();
            }
        }
        if (block.trainable() && optimizer.updatesEachBackward(pos)) updatesApplied++;
        out.toPrevious(new StageCommand.Backward(pos, TensorPayload.of(dx)), pos);
    }

    @Override
    public boolean finishPass(Position pass, Outbox out) {
        if (pass.pass().backward()) normSquared = optimizer.finishPass(pass);
        return true;
    }

    @Override
    public double normSquared() {
        return normSquared;
    }

    @Override
    public long staleness() {
        return staleness;
    }

    @Override
    public void discardPending() {
        for (Saved s : saved.values()) {
            s.forward().saved().close();
            s.input().close();
        }
        saved.clear();
    }

    @Override
    public void close() {
        discardPending();
        optimizer.close();
        block.close();
    }
}
