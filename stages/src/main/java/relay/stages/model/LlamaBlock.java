package relay.stages.model;

import java.util.List;
import relay.stages.layers.Activations;
import relay.stages.layers.CausalAttention;
import relay.stages.layers.GradientSink;
import relay.stages.layers.Linear;
import relay.stages.layers.Norm;
import relay.stages.layers.Parameter;
import relay.stages.layers.TransformerBlock;
import relay.stages.memory.Category;
import relay.stages.tensor.Device;
import relay.stages.tensor.Mat;
import relay.stages.tensor.Tensor;

/**
 * A LLaMA-family decoder layer: RMSNorm, grouped-query attention with rotary positions, RMSNorm, SwiGLU MLP.
 * Names follow Hugging Face's LlamaDecoderLayer; the config's options add biases (Llama's attention_bias and
 * mlp_bias, Qwen2's q, k and v biases), rotary scaling and a sliding window (Mistral, Qwen2).
 */
public final class LlamaBlock extends TransformerBlock {
    private final int dim;
    private final int heads;
    private final int kvHeads;
    private final int headDim;
    private final RotaryEmbedding rotary;
    private final Norm inputNorm;
    private final Norm postNorm;
    private final Linear q;
    private final Linear k;
    private final Linear v;
    private final Linear o;
    private final Linear gate;
    private final Linear up;
    private final Linear down;
    private final CausalAttention attention;

    /** Layer {@code layer} of the model (Qwen2's sliding window depends on it), its parameters named {@code prefix}…. */
    public LlamaBlock(ModelConfig cfg, int layer, String prefix, Initializer init) {
        int c = cfg.hidden(), i = cfg.intermediate();
        dim = c;
        heads = cfg.heads();
        kvHeads = cfg.kvHeads();
        headDim = cfg.headDim();
        rotary = RotaryEmbedding.of(cfg);
        int qw = heads * headDim, kvw = kvHeads * headDim;
        float std = 0.02f, residualStd = (float) (0.02 / Math.sqrt(2.0 * cfg.layers()));
        inputNorm = new Norm(register(init.constant(prefix + "input_layernorm.weight", 1f, c)), null, cfg.normEps());
        boolean qkvBias = cfg.qkvBias(), oBias = cfg.options().attentionBias(), mlpBias = cfg.options().mlpBias();
        q = linear(init, prefix + "self_attn.q_proj", std, qw, c, qkvBias);
        k = linear(init, prefix + "self_attn.k_proj", std, kvw, c, qkvBias);
        v = linear(init, prefix + "self_attn.v_proj", std, kvw, c, qkvBias);
        o = linear(init, prefix + "self_attn.o_proj", residualStd, c, qw, oBias);
        postNorm = new Norm(register(init.constant(prefix + "post_attention_layernorm.weight", 1f, c)), null, cfg.normEps());
        gate = linear(init, prefix + "mlp.gate_proj", std, i, c, mlpBias);
        up = linear(init, prefix + "mlp.up_proj", std, i, c, mlpBias);
        down = linear(init, prefix + "mlp.down_proj", residualStd, c, i, mlpBias);
        attention = new CausalAttention(heads, kvHeads, headDim, cfg.window(layer));
    }

    /** A [out, in] projection named name.weight, with name.bias (zeros, as transformers initializes them) when asked. */
    private Linear linear(Initializer init, String name, float std, int out, int in, boolean bias) {
        Parameter w = register(init.normal(name + ".weight", std, out, in));
        return new Linear(w, bias ? register(init.constant(name + ".bias", 0f, out)) : null);
    }

    @Override
    public List<Linear> linears() {
        return List.of(q, k, v, o, gate, up, down);
    }

    private static final class Saved extends Activations {
        Norm.Stats n1;
        Linear.Saved qIn;
        Linear.Saved kIn;
        Linear.Saved vIn;
        Tensor q;
        Tensor k;
        Tensor v;
        Tensor probs;
        Linear.Saved oIn;
        Tensor h;
        Norm.Stats n2;
        Linear.Saved gateIn;
        Linear.Saved upIn;
        Tensor gate;
        Tensor up;
        Linear.Saved downIn;

        Saved(Tensor x, int batch, int seq, int[] positions) {
            super(x, batch, seq, positions);
        }
    }

    @Override
    protected Forward compute(Tensor x, int batch, int seq, int[] positions, boolean trainable, boolean output) {
        Device d = x.device();
        int n = x.rows(), qw = heads * headDim, kvw = kvHeads * headDim;
        Saved s = new Saved(x, batch, seq, positions);
        Norm.Out n1 = inputNorm.forward(x, activations());
        s.n1 = s.keep(n1.stats());
        s.q = s.keep(d.empty(Category.ACTIVATIONS, activations(), n, qw));
        s.k = s.keep(d.empty(Category.ACTIVATIONS, activations(), n, kvw));
        s.v = s.keep(d.empty(Category.ACTIVATIONS, activations(), n, kvw));
        s.qIn = s.keep(q.forward(n1.y(), s.q, trainable));
        s.kIn = s.keep(k.forward(n1.y(), s.k, trainable));
        s.vIn = s.keep(v.forward(n1.y(), s.v, trainable));
        s.keepIfUsed(n1.y(), s.qIn, s.kIn, s.vIn);
        double[] freq = rotary.inverseFrequencies(seq);
        d.rope(s.q, seq, heads, freq, rotary.scale(), false, 0, positions);
        d.rope(s.k, seq, kvHeads, freq, rotary.scale(), false, 0, positions);
        Tensor att = d.empty(Category.ACTIVATIONS, activations(), n, qw);
        s.probs = s.keep(attention.forward(Mat.of(s.q), Mat.of(s.k), Mat.of(s.v), batch, seq, positions, att, activations()));
        s.h = s.keep(d.empty(Category.ACTIVATIONS, activations(), n, dim));
        s.oIn = s.keep(o.forward(att, s.h, trainable));
        s.keepIfUsed(att, s.oIn);
        d.add(x, s.h, s.h);
        Norm.Out n2 = postNorm.forward(s.h, activations());
        s.n2 = s.keep(n2.stats());
        s.gate = s.keep(d.empty(Category.ACTIVATIONS, activations(), n, gate.out()));
        s.up = s.keep(d.empty(Category.ACTIVATIONS, activations(), n, up.out()));
        s.gateIn = s.keep(gate.forward(n2.y(), s.gate, trainable));
        s.upIn = s.keep(up.forward(n2.y(), s.up, trainable));
        s.keepIfUsed(n2.y(), s.gateIn, s.upIn);
        Tensor act = d.empty(Category.ACTIVATIONS, activations(), n, gate.out());
        d.swiglu(s.gate, s.up, act);
        Tensor out = output ? d.empty(Category.ACTIVATIONS, activations(), n, dim) : null;
        s.downIn = s.keep(down.forward(act, out, trainable));
        s.keepIfUsed(act, s.downIn);
        if (output) d.add(s.h, out, out);
        return new Forward(out, s);
    }

    @Override
    public KvCache.Layer newCache(int capacity) {
        Device d = q.weight().value().device();
        return new KvCache.Layer(d.allocate(Category.ACTIVATIONS, capacity, kvHeads * headDim),
                d.allocate(Category.ACTIVATIONS, capacity, kvHeads * headDim));
    }

    @Override
    public Tensor decode(Tensor x, KvCache.Layer cache, int first) {
        Device d = x.device();
        int n = x.rows(), total = first + n;
        Tensor h;
        Norm.Out n1 = inputNorm.forward(x);
        try (Tensor y1 = n1.y(); Norm.Stats st1 = n1.stats(); Tensor qt = q.forward(y1, Category.ACTIVATIONS);
             Tensor kt = k.forward(y1, Category.ACTIVATIONS); Tensor vt = v.forward(y1, Category.ACTIVATIONS);
             Tensor att = d.empty(Category.ACTIVATIONS, n, heads * headDim)) {
            // The frequencies of the length reached (dynamic scaling changes them past max_position_embeddings); cached
            // keys keep the turn they were stored with, as in transformers' generate.
            double[] freq = rotary.inverseFrequencies(total);
            d.rope(qt, n, heads, freq, rotary.scale(), false, first, null);
            d.rope(kt, n, kvHeads, freq, rotary.scale(), false, first, null);
            d.copy(kt, cache.keys().rowRange(first, total));
            d.copy(vt, cache.values().rowRange(first, total));
            attention.attendCached(Mat.of(qt), Mat.of(cache.keys()), Mat.of(cache.values()), n, total, att);
            h = o.forward(att, Category.ACTIVATIONS);
        }
        d.add(x, h, h);
        Norm.Out n2 = postNorm.forward(h);
        try (Tensor y2 = n2.y(); Norm.Stats st2 = n2.stats(); Tensor g = gate.forward(y2, Category.ACTIVATIONS);
             Tensor u = up.forward(y2, Category.ACTIVATIONS); Tensor act = d.empty(Category.ACTIVATIONS, n, gate.out())) {
            d.swiglu(g, u, act);
            Tensor out = down.forward(act, Category.ACTIVATIONS);
            d.add(h, out, out);
            return out;
        } finally {
            h.close();
        }
    }

    @Override
    protected Tensor backward(Activations a, Tensor dOut, GradientSink sink) {
        Saved s = (Saved) a;
        Device d = dOut.device();
        int n = dOut.rows(), inner = gate.out();
        Tensor dH = d.empty(Category.ACTIVATIONS, n, dim);
        d.copy(dOut, dH);
        try (Tensor dN2 = d.empty(Category.ACTIVATIONS, n, dim)) {
            try (Tensor dGate = d.empty(Category.ACTIVATIONS, n, inner);
                 Tensor dUp = d.empty(Category.ACTIVATIONS, n, inner)) {
                try (Tensor dAct = d.empty(Category.ACTIVATIONS, n, inner)) {
                    down.backward(s.downIn, dOut, dAct, false, sink);
                    d.swigluBackward(s.gate, s.up, dAct, dGate, dUp);
                }
                gate.backward(s.gateIn, dGate, dN2, false, sink);
                up.backward(s.upIn, dUp, dN2, true, sink);
            }
            postNorm.backward(dN2, s.h, s.n2, dH, sink);
        }
        try (Tensor dN1 = d.empty(Category.ACTIVATIONS, n, dim)) {
            try (Tensor dq = d.empty(Category.ACTIVATIONS, n, heads * headDim);
                 Tensor dk = d.allocate(Category.ACTIVATIONS, n, kvHeads * headDim);
                 Tensor dv = d.allocate(Category.ACTIVATIONS, n, kvHeads * headDim)) {
                try (Tensor dAtt = d.empty(Category.ACTIVATIONS, n, heads * headDim)) {
                    o.backward(s.oIn, dH, dAtt, false, sink);
                    attention.backward(dAtt, s.probs, Mat.of(s.q), Mat.of(s.k), Mat.of(s.v), s.batch(), s.seq(), s.positions(),
                            Mat.of(dq), Mat.of(dk), Mat.of(dv));
                }
                double[] freq = rotary.inverseFrequencies(s.seq());
                d.rope(dq, s.seq(), heads, freq, rotary.scale(), true, 0, s.positions());
                d.rope(dk, s.seq(), kvHeads, freq, rotary.scale(), true, 0, s.positions());
                q.backward(s.qIn, dq, dN1, false, sink);
                k.backward(s.kIn, dk, dN1, true, sink);
                v.backward(s.vIn, dv, dN1, true, sink);
            }
            inputNorm.backward(dN1, s.input(), s.n1, dH, sink);
        }
        return dH;
    }
}
