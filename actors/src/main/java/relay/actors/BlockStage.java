package relay.actors;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import relay.optimizers.LowRankTerms;
import relay.stages.layers.DeferredWeightGradients;
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
 * case it computes no weight gradient at all. With a split schedule (zero bubble) backward computes only
 * the input gradient and keeps the weight gradients' work for the plan's W of that microbatch. With RSO or
 * LoRA its linears carry the method's low-rank terms, which live here too: RSO's subspaces are redrawn when
 * the coordinator says so, and the weights leave the stage with the terms folded in.
 */
final class BlockStage implements StageRole {
    private final TransformerBlock block;
    /** RSO's or LoRA's terms on the block's linears, or null. */
    private final LowRankTerms terms;
    private final Device device;
    private final StageOptimizer optimizer;
    private final boolean split;
    private final Map<Integer, Saved> saved = new HashMap<>();
    /** Microbatches whose B ran and whose W has not: the deferred work, with the block input it reads. */
    private final Map<Integer, Deferred> deferred = new HashMap<>();
    /** Updates this block applied in the pass (eager mode: one per backward, or per W when split); staleness counts these. */
    private long updatesApplied;
    private long staleness;

    /** What a block keeps from a microbatch's forward to its backward, and how many updates it had seen. */
    private record Saved(Tensor input, TransformerBlock.Forward forward, long updatesAtForward) {}

    private record Deferred(Saved saved, DeferredWeightGradients weights) implements AutoCloseable {
        @Override
        public void close() {
            try (Tensor input = saved.input()) {
                weights.close();
            }
        }
    }

    /**
     * @param terms the method's low-rank terms on the block's linears, or null
     * @param split whether backward leaves the weight gradients to a W action (a zero-bubble schedule)
     */
    BlockStage(TransformerBlock block, LowRankTerms terms, Device device, StageOptimizer optimizer, boolean split) {
        this.block = block;
        this.terms = terms;
        this.device = device;
        this.optimizer = optimizer;
        this.split = split;
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
    public float[] values(Parameter p) {
        float[] v = terms == null ? null : terms.effectiveValues(p);
        return v != null ? v : p.value().toArray();
    }

    @Override
    public List<String> stateOwners() {
        return allParameters().stream().map(Parameter::name).toList();
    }

    private List<Parameter> allParameters() {
        return parameters(block, terms);
    }

    /** The block's parameters and its terms' matrices: everything its backward may hand a gradient for. */
    static List<Parameter> parameters(TransformerBlock block, LowRankTerms terms) {
        List<Parameter> all = new ArrayList<>(block.parameters());
        if (terms != null) all.addAll(terms.parameters());
        return all;
    }

    /** The rule's state and the terms' values a checkpoint needs (LoRA's adapters). */
    @Override
    public Map<String, float[]> state() {
        Map<String, float[]> s = new TreeMap<>(optimizer.export());
        if (terms != null) s.putAll(terms.values(optimizer::keeps));
        return s;
    }

    @Override
    public void restore(Map<String, float[]> values) {
        if (terms != null) terms.restoreValues(values);
        optimizer.restore(allParameters(), values);
    }

    /**
     * RSO: the subspaces of step {@code draw}'s seed replace the current ones (B merged first); B's optimizer
     * state starts afresh when {@code fresh} (a period's first step, not a resumed run inside a period).
     */
    @Override
    public void redraw(long draw, boolean fresh) {
        if (terms == null || !terms.redraws()) throw new IllegalStateException("this block has no subspaces to redraw");
        List<Parameter> bs = terms.redraw(draw);
        if (fresh) optimizer.release(bs);
    }

    @Override
    public boolean takes(StageCommand c) {
        return c instanceof StageCommand.Forward || c instanceof StageCommand.Backward || c instanceof StageCommand.SetTrainable
                || c instanceof StageCommand.Redraw;
    }

    @Override
    public void startPass(Position pass) {
        staleness = 0;
        optimizer.startPass();
    }

    /** LISA: the block trains from now on, or is frozen and its optimizer state is freed. */
    @Override
    public void setTrainable(boolean trainable) {
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
        StageCommand.Forward m = in.forwards.remove(j);
        Tensor x = m.activation().materialize(device, Category.ACTIVATIONS);
        // The block's saved activations keep the position ids for its backward (a recomputed forward too).
        TransformerBlock.Forward f;
        if (pos.pass().backward()) {
            f = block.forward(x, pos.batch(), pos.seq(), m.positions());
            saved.put(j, new Saved(x, f, updatesApplied));
        } else {
            try (x) {
                f = block.forward(x, pos.batch(), pos.seq(), m.positions());
            }
            f.saved().close();
        }
        out.toNext(new StageCommand.Forward(pos, TensorPayload.of(f.output()), m.positions()), pos);
    }

    @Override
    public void backward(Position pos, Inbox in, Outbox out) {
        int j = pos.microbatch();
        Tensor dx;
        try (Tensor dOut = in.backwards.remove(j).gradient().materialize(device, Category.ACTIVATIONS)) {
            Saved s = saved.remove(j);
            if (split && pos.pass().backward()) {
                TransformerBlock.Split b;
                try {
                    b = block.backwardInput(s.forward(), dOut);
                } catch (RuntimeException | Error e) {
                    s.input().close();
                    throw e;
                }
                deferred.put(j, new Deferred(s, b.weights()));
                dx = b.dx();
            } else {
                try {
                    dx = block.backward(s.forward(), dOut, sink(s, pos));
                } finally {
                    s.input().close();
                }
            }
        }
        out.toPrevious(new StageCommand.Backward(pos, TensorPayload.of(dx)), pos);
    }

    @Override
    public void weightGradients(Position pos) {
        try (Deferred d = deferred.remove(pos.microbatch())) {
            d.weights().run(sink(d.saved(), pos));
        }
    }

    /**
     * The optimizer's sink for a microbatch's weight gradients, null when frozen; counts the updates the
     * block's weights took since that microbatch's forward, and the one applying them now (eager mode).
     */
    private GradientSink sink(Saved s, Position pos) {
        staleness = Math.max(staleness, updatesApplied - s.updatesAtForward());
        if (!block.trainable()) return null;
        if (optimizer.updatesEachBackward(pos)) updatesApplied++;
        return optimizer.sink(pos);
    }

    @Override
    public boolean finishPass(Position pass, Outbox out) {
        if (!pass.pass().backward()) return true;
        optimizer.finishPass(pass, out);
        return completeShare(pass, out);
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
        deferred.values().forEach(Deferred::close);
        deferred.clear();
        optimizer.discardPending();
    }

    @Override
    public void close() {
        discardPending();
        optimizer.close();
        if (terms != null) terms.close();
        block.close();
    }
}
