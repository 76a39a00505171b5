package relay.stages.model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import relay.stages.layers.GradientSink;
import relay.stages.layers.Linear;
import relay.stages.layers.Parameter;
import relay.stages.layers.TransformerBlock;
import relay.stages.tensor.Device;
import relay.stages.tensor.Tensor;

/** Embedding, blocks and head of one decoder-only model, all on one device. */
public final class Model implements AutoCloseable {
    private final ModelConfig config;
    private final Embedding embedding;
    private final List<TransformerBlock> blocks;
    private final LmHead head;

    public Model(ModelConfig config, Embedding embedding, List<TransformerBlock> blocks, LmHead head) {
        this.config = config;
        this.embedding = embedding;
        this.blocks = List.copyOf(blocks);
        this.head = head;
    }

    /** A freshly initialized float32 model; the same seed gives the same weights. */
    public static Model initialize(ModelConfig cfg, Device device, long seed) {
        return initialize(cfg, device, seed, Precision.F32);
    }

    /** A freshly initialized model held in {@code precision}; the same seed gives the same weights (rounded alike). */
    public static Model initialize(ModelConfig cfg, Device device, long seed, Precision precision) {
        Initializer init = new Initializer(device, seed, precision.weights());
        Embedding emb = Embedding.create(cfg, init);
        emb.setActivations(precision.activations());
        List<TransformerBlock> blocks = new ArrayList<>();
        for (int i = 0; i < cfg.layers(); i++) {
            TransformerBlock b = block(cfg, i, init);
            b.setActivations(precision.activations());
            blocks.add(b);
        }
        return new Model(cfg, emb, blocks, LmHead.create(cfg, init, emb.tokenTable()));
    }

    /** Block i with its Hugging Face parameter names. */
    public static TransformerBlock block(ModelConfig cfg, int i, Initializer init) {
        return switch (cfg.family()) {
            case GPT2 -> new Gpt2Block(cfg, "transformer.h." + i + ".", init);
            case LLAMA -> new LlamaBlock(cfg, i, "model.layers." + i + ".", init);
        };
    }

    public ModelConfig config() {
        return config;
    }

    public Embedding embedding() {
        return embedding;
    }

    public List<TransformerBlock> blocks() {
        return blocks;
    }

    public LmHead head() {
        return head;
    }

    /** Every parameter once (a tied matrix appears once). */
    public List<Parameter> parameters() {
        Set<Parameter> ps = Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        List<Parameter> ordered = new ArrayList<>();
        List<Parameter> all = new ArrayList<>(embedding.parameters());
        for (TransformerBlock b : blocks) all.addAll(b.parameters());
        all.addAll(head.parameters(true));
        for (Parameter p : all) if (ps.add(p)) ordered.add(p);
        return ordered;
    }

    /** Where each stage's weight gradients go: stage 0 is the embedding, 1..layers the blocks, layers+1 the head. */
    @FunctionalInterface
    public interface Sinks {
        /** The sink for this stage, or null when the stage is frozen (no weight gradient is computed). */
        GradientSink forStage(int stage);

        static Sinks all(GradientSink sink) {
            return stage -> sink;
        }
    }

    public int stages() {
        return blocks.size() + 2;
    }

    /**
     * One microbatch through the whole model: forward, loss, and backward with weight gradients (of
     * gradScale·loss) handed to each stage's sink as each is complete. Returns the mean loss.
     */
    public double forwardBackward(int[] inputs, int[] targets, int batch, int seq, float gradScale, Sinks sinks) {
        return forwardBackward(inputs, targets, null, batch, seq, gradScale, sinks);
    }

    /** The same for sequences of packed examples: {@code positions} (null: none) as {@link relay.stages.train.Batch} has them. */
    public double forwardBackward(int[] inputs, int[] targets, int[] positions, int batch, int seq, float gradScale, Sinks sinks) {
        Tensor x0 = embedding.forward(inputs, seq, 0, positions);
        List<Tensor> inputsOf = new ArrayList<>();
        List<TransformerBlock.Forward> forwards = new ArrayList<>();
        Tensor x = x0;
        try {
            for (TransformerBlock b : blocks) {
                inputsOf.add(x);
                TransformerBlock.Forward f = b.forward(x, batch, seq, positions);
                forwards.add(f);
                x = f.output();
            }
            // The head's weight gradient may wait until the blocks' activations are freed (LmHead#defersWeightGradient).
            LmHead.Result r = head.lossAndBackward(x, targets, gradScale, sinks.forStage(blocks.size() + 1), true);
            try (LmHead.WeightGradient headWeight = r.weightGradient()) {
                x.close();
                Tensor grad = r.dx();
                for (int i = blocks.size() - 1; i >= 0; i--) {
                    Tensor next = blocks.get(i).backward(forwards.get(i), grad, sinks.forStage(i + 1));
                    grad.close();
                    Tensor in = inputsOf.get(i);
                    if (i > 0) in.close();
                    grad = next;
                }
                if (headWeight != null) headWeight.run();
                embedding.backward(inputs, seq, positions, grad, sinks.forStage(0));
                grad.close();
            }
            return r.loss();
        } finally {
            if (!x0.isFreed()) x0.close();
        }
    }

    /** The last block's output for a batch, forward only: no activation outlives the block that made it. */
    private Tensor hidden(int[] inputs, int[] positions, int batch, int seq) {
        Tensor x = embedding.forward(inputs, seq, 0, positions);
        for (TransformerBlock b : blocks) {
            TransformerBlock.Forward f;
            try {
                f = b.forward(x, batch, seq, positions);
            } finally {
                x.close();
            }
            f.saved().close();
            x = f.output();
        }
        return x;
    }

    /** The logits after the last of the tokens, by one forward over all of them (no cache). */
    public float[] lastLogits(int[] ids) {
        try (Tensor x = hidden(ids, null, 1, ids.length); Tensor z = head.logits(x.rowRange(ids.length - 1, ids.length))) {
            return z.toArray();
        }
    }

    /** The logits after the last of the new tokens, extending the cache by them. */
    public float[] nextLogits(int[] newIds, KvCache cache) {
        int first = cache.length(), n = newIds.length;
        if (first + n > cache.capacity()) throw new IllegalArgumentException("the cache holds " + cache.capacity() + " positions");
        Tensor x = embedding.forward(newIds, n, first, null);
        try {
            for (int i = 0; i < blocks.size(); i++) {
                Tensor y = blocks.get(i).decode(x, cache.layer(i), first);
                x.close();
                x = y;
            }
            cache.advance(n);
            try (Tensor z = head.logits(x.rowRange(n - 1, n))) {
                return z.toArray();
            }
        } finally {
            x.close();
        }
    }

    /** Mean loss of one batch, forward only: no activation is kept beyond the block that needs it. */
    public double loss(int[] inputs, int[] targets, int batch, int seq) {
        return loss(inputs, targets, null, batch, seq);
    }

    /** The same for sequences of packed examples ({@code positions} null: none). */
    public double loss(int[] inputs, int[] targets, int[] positions, int batch, int seq) {
        try (Tensor x = hidden(inputs, positions, batch, seq)) {
            return head.loss(x, targets);
        }
    }

    /**
     * Every parameter's values by name as the model computes with them: a linear's low-rank term (LoRA,
     * RSO) is folded into its weight and the terms' own matrices are left out, so the map is a plain model.
     */
    public java.util.Map<String, float[]> values() {
        java.util.Map<Parameter, Linear> withTerm = new java.util.IdentityHashMap<>();
        Set<Parameter> terms = Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        for (TransformerBlock b : blocks) {
            for (Linear l : b.linears()) {
                if (l.lowRank() == null) continue;
                withTerm.put(l.weight(), l);
                terms.add(l.lowRank().a());
                terms.add(l.lowRank().b());
            }
        }
        java.util.Map<String, float[]> out = new java.util.LinkedHashMap<>();
        for (Parameter p : parameters()) {
            if (terms.contains(p)) continue;
            Linear l = withTerm.get(p);
            out.put(p.name(), l != null ? l.effectiveWeight() : p.value().toArray());
        }
        return out;
    }

    /** Sets every parameter from values by name (a loaded checkpoint); a missing or misshapen one is an error. */
    public void load(java.util.Map<String, float[]> values) {
        for (Parameter p : parameters()) {
            float[] v = values.get(p.name());
            if (v == null) throw new IllegalArgumentException("no values for parameter " + p.name());
            if (v.length != p.size()) throw new IllegalArgumentException(p.name() + ": " + v.length + " values for " + p.value().describe());
            p.value().copyFrom(v);
        }
    }

    /** The same with one sink for every stage. */
    public double forwardBackward(int[] inputs, int[] targets, int batch, int seq, float gradScale, GradientSink sink) {
        return forwardBackward(inputs, targets, batch, seq, gradScale, Sinks.all(sink));
    }

    @Override
    public void close() {
        for (Parameter p : parameters()) p.close();
    }

    /** Distinct parameter names, to check a model for duplicates. */
    public Set<String> parameterNames() {
        Set<String> names = new LinkedHashSet<>();
        for (Parameter p : parameters()) names.add(p.name());
        return names;
    }
}
