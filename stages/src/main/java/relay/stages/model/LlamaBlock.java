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
 * A LLaMA decoder layer: RMSNorm, grouped-query attention with rotary positions, RMSNorm, SwiGLU MLP,
 * no biases. Names follow Hugging Face's LlamaDecoderLayer.
 */
public final class LlamaBlock extends TransformerBlock {
    private final int dim;
    private final int heads;
    private final int kvHeads;
    private final int headDim;
    private final double ropeTheta;
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

    public LlamaBlock(ModelConfig cfg, String prefix, Initializer init) {
        int c = cfg.hidden(), i = cfg.intermediate();
        dim = c;
        heads = cfg.heads();
        kvHeads = cfg.kvHeads();
        headDim = cfg.headDim();
        ropeTheta = cfg.ropeTheta();
        int qw = heads * headDim, kvw = kvHeads * headDim;
        float std = 0.02f, residualStd = (float) (0.02 / Math.sqrt(2.0 * cfg.layers()));
        inputNorm = new Norm(register(init.constant(prefix + "input_layernorm.weight", 1f, c)), null, cfg.normEps());
        q = linear(init.normal(prefix + "self_attn.q_proj.weight", std, qw, c));
        k = linear(init.normal(prefix + "self_attn.k_proj.weight", std, kvw, c));
        v = linear(init.normal(prefix + "self_attn.v_proj.weight", std, kvw, c));
        o = linear(init.normal(prefix + "self_attn.o_proj.weight", residualStd, c, qw));
        postNorm = new Norm(register(init.constant(prefix + "post_attention_layernorm.weight", 1f, c)), null, cfg.normEps());
        gate = linear(init.normal(prefix + "mlp.gate_proj.weight", std, i, c));
        up = linear(init.normal(prefix + "mlp.up_proj.weight", std, i, c));
        down = linear(init.normal(prefix + "mlp.down_proj.weight", residualStd, c, i));
        attention = new CausalAttention(heads, kvHeads, headDim);
    }

    private Linear linear(Parameter weight) {
        return new Linear(register(weight), null);
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

        Saved(Tensor x, int batch, int seq) {
            super(x, batch, seq);
        }
    }

    @Override
    protected Forward compute(Tensor x, int batch, int seq, boolean trainable) {
        Device d = x.device();
        int n = x.rows(), qw = heads * headDim, kvw = kvHeads * headDim;
        Saved s = new Saved(x, batch, seq);
        Norm.Out n1 = inputNorm.forward(x);
        s.n1 = s.keep(n1.stats());
        s.q = s.keep(d.empty(Category.ACTIVATIONS, n, qw));
        s.k = s.keep(d.empty(Category.ACTIVATIONS, n, kvw));
        s.v = s.keep(d.empty(Category.ACTIVATIONS, n, kvw));
        s.qIn = s.keep(q.forward(n1.y(), s.q, trainable));
        s.kIn = s.keep(k.forward(n1.y(), s.k, trainable));
        s.vIn = s.keep(v.forward(n1.y(), s.v, trainable));
        s.keepIfUsed(n1.y(), s.qIn, s.kIn, s.vIn);
        d.rope(s.q, seq, heads, headDim, ropeTheta, false, 0);
        d.rope(s.k, seq, kvHeads, headDim, ropeTheta, false, 0);
        Tensor att = d.empty(Category.ACTIVATIONS, n, qw);
        s.probs = s.keep(attention.forward(Mat.of(s.q), Mat.of(s.k), Mat.of(s.v), batch, seq, att));
        s.h = s.keep(d.empty(Category.ACTIVATIONS, n, dim));
        s.oIn = s.keep(o.forward(att, s.h, trainable));
        s.keepIfUsed(att, s.oIn);
        d.add(x, s.h, s.h);
        Norm.Out n2 = postNorm.forward(s.h);
        s.n2 = s.keep(n2.stats());
        s.gate = s.keep(d.empty(Category.ACTIVATIONS, n, gate.out()));
        s.up = s.keep(d.empty(Category.ACTIVATIONS, n, up.out()));
        s.gateIn = s.keep(gate.forward(n2.y(), s.gate, trainable));
        s.upIn = s.keep(up.forward(n2.y(), s.up, trainable));
        s.keepIfUsed(n2.y(), s.gateIn, s.upIn);
        Tensor act = d.empty(Category.ACTIVATIONS, n, gate.out());
        d.swiglu(s.gate, s.up, act);
        Tensor out = d.empty(Category.ACTIVATIONS, n, dim);
        s.downIn = s.keep(down.forward(act, out, trainable));
        s.keepIfUsed(act, s.downIn);
        d.add(s.h, out, out);
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
            d.rope(qt, n, heads, headDim, ropeTheta, false, first);
            d.rope(kt, n, kvHeads, headDim, ropeTheta, false, first);
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
                    attention.backward(dAtt, s.probs, Mat.of(s.q), Mat.of(s.k), Mat.of(s.v), s.batch(), s.seq(),
                            Mat.of(dq), Mat.of(dk), Mat.of(dv));
                }
                d.rope(dq, s.seq(), heads, headDim, ropeTheta, true, 0);
                d.rope(dk, s.seq(), kvHeads, headDim, ropeTheta, true, 0);
                q.backward(s.qIn, dq, dN1, false, sink);
                k.backward(s.kIn, dk, dN1, true, sink);
                v.backward(s.vIn, dv, dN1, true, sink);
            }
            inputNorm.backward(dN1, s.input(), s.n1, dH, sink);
        }
        return dH;
    }
}
