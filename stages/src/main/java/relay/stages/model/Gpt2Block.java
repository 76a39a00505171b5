package relay.stages.model;

import java.util.List;
import relay.stages.layers.Activations;
import relay.stages.layers.CausalAttention;
import relay.stages.layers.GradientSink;
import relay.stages.layers.Linear;
import relay.stages.layers.Norm;
import relay.stages.layers.TransformerBlock;
import relay.stages.memory.Category;
import relay.stages.tensor.Device;
import relay.stages.tensor.Mat;
import relay.stages.tensor.Tensor;

/** A GPT-2 block: x + attn(ln_1(x)), then + mlp(ln_2(·)) with GELU (tanh). Names follow Hugging Face. */
public final class Gpt2Block extends TransformerBlock {
    private final int dim;
    private final Norm ln1;
    private final Norm ln2;
    private final Linear qkv;
    private final Linear attnProj;
    private final Linear fc;
    private final Linear mlpProj;
    private final CausalAttention attention;

    public Gpt2Block(ModelConfig cfg, String prefix, Initializer init) {
        int c = cfg.hidden(), i = cfg.intermediate();
        float std = 0.02f, residualStd = (float) (0.02 / Math.sqrt(2.0 * cfg.layers()));
        this.dim = c;
        ln1 = new Norm(register(init.constant(prefix + "ln_1.weight", 1f, c)), register(init.constant(prefix + "ln_1.bias", 0f, c)), cfg.normEps());
        qkv = new Linear(register(init.normal(prefix + "attn.c_attn.weight", std, 3 * c, c)), register(init.constant(prefix + "attn.c_attn.bias", 0f, 3 * c)));
        attnProj = new Linear(register(init.normal(prefix + "attn.c_proj.weight", residualStd, c, c)), register(init.constant(prefix + "attn.c_proj.bias", 0f, c)));
        ln2 = new Norm(register(init.constant(prefix + "ln_2.weight", 1f, c)), register(init.constant(prefix + "ln_2.bias", 0f, c)), cfg.normEps());
        fc = new Linear(register(init.normal(prefix + "mlp.c_fc.weight", std, i, c)), register(init.constant(prefix + "mlp.c_fc.bias", 0f, i)));
        mlpProj = new Linear(register(init.normal(prefix + "mlp.c_proj.weight", residualStd, c, i)), register(init.constant(prefix + "mlp.c_proj.bias", 0f, c)));
        attention = new CausalAttention(cfg.heads(), cfg.heads(), cfg.headDim());
    }

    @Override
    public List<Linear> linears() {
        return List.of(qkv, attnProj, fc, mlpProj);
    }

    private static final class Saved extends Activations {
        Norm.Stats n1;
        Tensor qkv;
        Linear.Saved qkvIn;
        Tensor probs;
        Linear.Saved projIn;
        Tensor h;
        Norm.Stats n2;
        Linear.Saved fcIn;
        Tensor fc;
        Linear.Saved mlpIn;

        Saved(Tensor x, int batch, int seq, int[] positions) {
            super(x, batch, seq, positions);
        }
    }

    @Override
    protected Forward compute(Tensor x, int batch, int seq, int[] positions, boolean trainable, boolean output) {
        Device d = x.device();
        int n = x.rows();
        Saved s = new Saved(x, batch, seq, positions);
        Norm.Out n1 = ln1.forward(x, activations());
        s.n1 = s.keep(n1.stats());
        s.qkv = s.keep(d.empty(Category.ACTIVATIONS, activations(), n, 3 * dim));
        s.qkvIn = s.keep(qkv.forward(n1.y(), s.qkv, trainable));
        s.keepIfUsed(n1.y(), s.qkvIn);
        Tensor att = d.empty(Category.ACTIVATIONS, activations(), n, dim);
        s.probs = s.keep(attention.forward(Mat.columns(s.qkv, 0, 0), Mat.columns(s.qkv, 0, dim),
                Mat.columns(s.qkv, 0, 2 * dim), batch, seq, positions, att, activations()));
        s.h = s.keep(d.empty(Category.ACTIVATIONS, activations(), n, dim));
        s.projIn = s.keep(attnProj.forward(att, s.h, trainable));
        s.keepIfUsed(att, s.projIn);
        d.add(x, s.h, s.h);
        Norm.Out n2 = ln2.forward(s.h, activations());
        s.n2 = s.keep(n2.stats());
        s.fc = s.keep(d.empty(Category.ACTIVATIONS, activations(), n, fc.out()));
        s.fcIn = s.keep(fc.forward(n2.y(), s.fc, trainable));
        s.keepIfUsed(n2.y(), s.fcIn);
        Tensor act = d.empty(Category.ACTIVATIONS, activations(), n, fc.out());
        d.gelu(s.fc, act);
        Tensor out = output ? d.empty(Category.ACTIVATIONS, activations(), n, dim) : null;
        s.mlpIn = s.keep(mlpProj.forward(act, out, trainable));
        s.keepIfUsed(act, s.mlpIn);
        if (output) d.add(s.h, out, out);
        return new Forward(out, s);
    }

    /** GPT-2 keeps whole qkv rows (the keys and values are column blocks of them). */
    @Override
    public KvCache.Layer newCache(int capacity) {
        return new KvCache.Layer(qkv.weight().value().device().allocate(Category.ACTIVATIONS, capacity, 3 * dim), null);
    }

    @Override
    public Tensor decode(Tensor x, KvCache.Layer cache, int first) {
        Device d = x.device();
        int n = x.rows(), total = first + n;
        Tensor h;
        Norm.Out n1 = ln1.forward(x);
        try (Tensor y1 = n1.y(); Norm.Stats st1 = n1.stats(); Tensor q = qkv.forward(y1, Category.ACTIVATIONS);
             Tensor att = d.empty(Category.ACTIVATIONS, n, dim)) {
            d.copy(q, cache.keys().rowRange(first, total));
            attention.attendCached(Mat.columns(q, 0, 0), Mat.columns(cache.keys(), 0, dim), Mat.columns(cache.keys(), 0, 2 * dim),
                    n, total, att);
            h = attnProj.forward(att, Category.ACTIVATIONS);
        }
        d.add(x, h, h);
        Norm.Out n2 = ln2.forward(h);
        try (Tensor y2 = n2.y(); Norm.Stats st2 = n2.stats(); Tensor f = fc.forward(y2, Category.ACTIVATIONS);
             Tensor act = d.empty(Category.ACTIVATIONS, n, fc.out())) {
            d.gelu(f, act);
            Tensor out = mlpProj.forward(act, Category.ACTIVATIONS);
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
        int n = dOut.rows();
        Tensor dH = d.empty(Category.ACTIVATIONS, n, dim);
        d.copy(dOut, dH);
        try (Tensor dN2 = d.empty(Category.ACTIVATIONS, n, dim)) {
            try (Tensor dAct = d.empty(Category.ACTIVATIONS, n, fc.out())) {
                mlpProj.backward(s.mlpIn, dOut, dAct, false, sink);
                d.geluBackward(s.fc, dAct, dAct);
                fc.backward(s.fcIn, dAct, dN2, false, sink);
            }
            ln2.backward(dN2, s.h, s.n2, dH, sink);
        }
        try (Tensor dN1 = d.empty(Category.ACTIVATIONS, n, dim)) {
            try (Tensor dQkv = d.allocate(Category.ACTIVATIONS, n, 3 * dim)) {
                try (Tensor dAtt = d.empty(Category.ACTIVATIONS, n, dim)) {
                    attnProj.backward(s.projIn, dH, dAtt, false, sink);
                    attention.backward(dAtt, s.probs, Mat.columns(s.qkv, 0, 0), Mat.columns(s.qkv, 0, dim),
                            Mat.columns(s.qkv, 0, 2 * dim), s.batch(), s.seq(), s.positions(), Mat.columns(dQkv, 0, 0),
                            Mat.columns(dQkv, 0, dim), Mat.columns(dQkv, 0, 2 * dim));
                }
                qkv.backward(s.qkvIn, dQkv, dN1, false, sink);
            }
            ln1.backward(dN1, s.input(), s.n1, dH, sink);
        }
        return dH;
    }
}
