package relay.stages.model;

import java.util.ArrayList;
import java.util.List;
import relay.stages.layers.GradientSink;
import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.tensor.DType;
import relay.stages.tensor.Device;
import relay.stages.tensor.Tensor;

/** Token embedding, plus learned positions for GPT-2. Backward scatter-adds into the tables. */
public final class Embedding {
    private final Parameter tokens;
    private final Parameter positions;

    public Embedding(Parameter tokens, Parameter positions) {
        this.tokens = tokens;
        this.positions = positions;
    }

    public static Embedding create(ModelConfig cfg, Initializer init) {
        Parameter wpe = cfg.family() == Family.GPT2
                ? init.normal("transformer.wpe.weight", 0.01f, cfg.maxPositions(), cfg.hidden()) : null;
        return new Embedding(tokenTable(cfg, init), wpe);
    }

    /**
     * The token table alone: the same values wherever it is made, so a pipeline's head can hold a replica
     * of a tied matrix on its own device.
     */
    public static Parameter tokenTable(ModelConfig cfg, Initializer init) {
        String name = cfg.family() == Family.GPT2 ? "transformer.wte.weight" : "model.embed_tokens.weight";
        return init.normal(name, 0.02f, cfg.vocabSize(), cfg.hidden());
    }

    public Parameter tokenTable() {
        return tokens;
    }

    private DType activations = DType.F32;

    public List<Parameter> parameters() {
        List<Parameter> ps = new ArrayList<>();
        ps.add(tokens);
        if (positions != null) ps.add(positions);
        return ps;
    }

    /** How the output is stored: the dtype of the activations between blocks (and of the message to the first). */
    public void setActivations(DType dtype) {
        this.activations = dtype;
    }

    /** [tokens.length, hidden] activations for sequences of length seq. */
    public Tensor forward(int[] ids, int seq) {
        return forward(ids, seq, 0, null);
    }

    /**
     * The same for sequences that start at position {@code first} (decoding with a cache), or whose tokens sit at
     * the given position ids (packed examples, each counting from 0; null: none).
     */
    public Tensor forward(int[] ids, int seq, int first, int[] positionIds) {
        Tensor table = tokens.value();
        Device d = table.device();
        Tensor x = d.empty(Category.ACTIVATIONS, activations, ids.length, table.cols());
        d.embedding(ids, table, x);
        if (positions != null) {
            if (first + seq > positions.value().rows()) {
                throw new IllegalArgumentException("position " + (first + seq) + " exceeds the model's "
                        + positions.value().rows() + " positions");
            }
            d.addPositions(x, positions.value(), seq, first, positionIds);
        }
        return x;
    }

    /** Hands the table gradients to the sink; nothing flows further back. */
    public void backward(int[] ids, int seq, Tensor dx, GradientSink sink) {
        backward(ids, seq, null, dx, sink);
    }

    /** The same for tokens at the given position ids (null: none), as forward had them. */
    public void backward(int[] ids, int seq, int[] positionIds, Tensor dx, GradientSink sink) {
        if (sink == null) return;
        Device d = dx.device();
        GradientSink.Slot dTokens = GradientSink.slot(sink, tokens);
        d.embeddingBackward(ids, dx, dTokens.tensor());
        dTokens.done();
        if (positions != null) {
            GradientSink.Slot dPositions = GradientSink.slot(sink, positions);
            d.positionsBackward(dx, dPositions.tensor(), seq, positionIds);
            dPositions.done();
        }
    }
}
