package relay.stages.check;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import java.util.function.Function;
import relay.stages.check.GradientCheck.Outcome;
import relay.stages.check.GradientCheck.Result;
import relay.stages.layers.CausalAttention;
import relay.stages.layers.GradientSink;
import relay.stages.layers.Linear;
import relay.stages.layers.LowRank;
import relay.stages.layers.Norm;
import relay.stages.layers.Parameter;
import relay.stages.layers.TransformerBlock;
import relay.stages.memory.Category;
import relay.stages.model.Adapters;
import relay.stages.model.Embedding;
import relay.stages.model.Family;
import relay.stages.model.Initializer;
import relay.stages.model.LmHead;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.DType;
import relay.stages.tensor.Device;
import relay.stages.tensor.Mat;
import relay.stages.tensor.Tensor;
import relay.stages.train.Batch;

/**
 * The float64 checks of every layer and both blocks on one device, on small odd shapes (sequence
 * lengths 5 and 7, head size 8, a GQA ratio of 2). A user on new hardware runs these first.
 */
public final class SelfTest {
    private final Device device;
    private final long seed;

    public SelfTest(Device device, long seed) {
        this.device = device;
        this.seed = seed;
    }

    public static List<String> names() {
        return List.of("linear", "linear-no-bias", "linear-lora", "linear-rso", "layernorm", "rmsnorm", "gelu", "swiglu", "rope",
                "rope-yarn", "rope-packed", "attention", "attention-gqa", "attention-window", "attention-packed",
                "attention-packed-window", "token-embedding", "position-embedding", "position-embedding-packed",
                "lm-head-cross-entropy", "lm-head-cross-entropy-rmsnorm", "gpt2-block", "gpt2-block-recompute",
                "gpt2-block-frozen", "llama-block", "llama-block-recompute", "llama-block-packed-recompute", "llama-block-rso",
                "qwen2-block-window", "gpt2-model-tied", "gpt2-model-packed", "llama-model", "llama-model-prompt-masked",
                "llama-model-packed", "llama-model-linear", "llama-model-dynamic", "llama-model-llama3", "llama-model-yarn",
                "llama-model-bias", "qwen2-model", "mistral-model-window", "mistral-model-packed-window");
    }

    public Result run(String name) {
        long s = seed ^ name.hashCode();
        SplittableRandom rng = new SplittableRandom(s);
        return switch (name) {
            case "linear" -> linear(name, rng, true);
            case "linear-no-bias" -> linear(name, rng, false);
            case "linear-lora" -> lowRankLinear(name, rng, true);
            case "linear-rso" -> lowRankLinear(name, rng, false);
            case "layernorm" -> norm(name, rng, true);
            case "rmsnorm" -> norm(name, rng, false);
            case "gelu" -> gelu(name, rng);
            case "swiglu" -> swiglu(name, rng);
            case "rope" -> rope(name, rng, ModelConfig.Rope.NONE, false);
            case "rope-yarn" -> rope(name, rng, ModelConfig.Rope.yarn(4, 2048), false);
            case "rope-packed" -> rope(name, rng, ModelConfig.Rope.NONE, true);
            case "attention" -> attention(name, rng, 2, 2, 0, false);
            case "attention-gqa" -> attention(name, rng, 4, 2, 0, false);
            case "attention-window" -> attention(name, rng, 4, 2, 3, false);
            case "attention-packed" -> attention(name, rng, 4, 2, 0, true);
            case "attention-packed-window" -> attention(name, rng, 4, 2, 3, true);
            case "token-embedding" -> embedding(name, rng, false, false);
            case "position-embedding" -> embedding(name, rng, true, false);
            case "position-embedding-packed" -> embedding(name, rng, true, true);
            case "lm-head-cross-entropy" -> head(name, rng, Family.GPT2);
            case "lm-head-cross-entropy-rmsnorm" -> head(name, rng, Family.LLAMA);
            case "gpt2-block" -> block(name, rng, gpt2(), false, false);
            case "gpt2-block-recompute" -> block(name, rng, gpt2(), true, false);
            case "gpt2-block-frozen" -> frozenBlock(name, rng, gpt2());
            case "llama-block-rso" -> subspaceBlock(name, rng, llama());
            case "llama-block" -> block(name, rng, llama(), false, false);
            case "llama-block-recompute" -> block(name, rng, llama(), true, false);
            case "llama-block-packed-recompute" -> block(name, rng, llama(), true, true);
            case "qwen2-block-window" -> block(name, rng, llama(9, LLAMA.withModelType("qwen2").withWindow(3, 0)), false, false);
            case "gpt2-model-tied" -> model(name, rng, gpt2(), false);
            case "gpt2-model-packed" -> model(name, rng, gpt2(), false, true);
            case "llama-model" -> model(name, rng, llama(), false);
            case "llama-model-prompt-masked" -> model(name, rng, llama(), true);
            case "llama-model-packed" -> model(name, rng, llama(), true, true);
            // The model checks run sequences of 6: dynamic scaling acts past max_position_embeddings 4, windows of 3 cut them.
            case "llama-model-linear" -> model(name, rng, llama(9, LLAMA.withRope(ModelConfig.Rope.linear(2.5), SCALING)), false);
            case "llama-model-dynamic" -> model(name, rng, llama(4, LLAMA.withRope(ModelConfig.Rope.dynamic(2), SCALING)), false);
            case "llama-model-llama3" -> model(name, rng, llama(9, LLAMA.withRope(ModelConfig.Rope.llama3(8, 1, 4, 64), SCALING)), false);
            case "llama-model-yarn" -> model(name, rng, llama(9, LLAMA.withRope(ModelConfig.Rope.yarn(4, 2048), SCALING)), false);
            case "llama-model-bias" -> model(name, rng, llama(9, LLAMA.withBiases(true, true)), false);
            case "qwen2-model" -> model(name, rng, llama(9, LLAMA.withModelType("qwen2").withWindow(3, 1)), false);
            case "mistral-model-window" -> model(name, rng, llama(9, LLAMA.withModelType("mistral").withWindow(3, 0)), false);
            case "mistral-model-packed-window" -> model(name, rng, llama(9, LLAMA.withModelType("mistral").withWindow(3, 0)), false, true);
            default -> throw new IllegalArgumentException("no self-test named " + name + "; known: " + names());
        };
    }

    // ---- configs: small, odd where it matters ----

    static final int B = 2;

    static ModelConfig gpt2() {
        return new ModelConfig(Family.GPT2, 13, 16, 2, 2, 2, 8, 40, 9, 1e-5f, 0, true);
    }

    /** Head size 8 with 4 query heads over 2 kv heads: q is 32 wide on a 16-wide residual stream. */
    static ModelConfig llama() {
        return new ModelConfig(Family.LLAMA, 11, 16, 2, 4, 2, 8, 24, 9, 1e-5f, 10000.0, false);
    }

    private static final ModelConfig.Options LLAMA = ModelConfig.Options.plain(Family.LLAMA);
    private static final ModelConfig.RopeSpelling SCALING = ModelConfig.RopeSpelling.ROPE_SCALING_ROPE_TYPE;

    /** The same shape with LLaMA-family options (rotary scaling, biases, a sliding window). */
    static ModelConfig llama(int maxPositions, ModelConfig.Options options) {
        return new ModelConfig(Family.LLAMA, 11, 16, 2, 4, 2, 8, 24, maxPositions, 1e-5f, 10000.0, false, options);
    }

    /**
     * Position ids of two examples packed in each of the B sequences of {@code seq}: sequence b holds one of
     * 2 + b tokens, then one of the rest (0, 1, 0, 1, 2, … and 0, 1, 2, 0, 1, …).
     */
    static int[] packed(int seq) {
        int[] p = new int[B * seq];
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < seq; t++) p[b * seq + t] = t < 2 + b ? t : t - (2 + b);
        }
        return p;
    }

    /** Layer {@code layer} of a LLaMA-family config in float64, its rotary frequencies for sequences of {@code seq}. */
    private static double[] referenceLlama(ModelConfig cfg, int layer, double[] x, int seq, Map<String, double[]> p) {
        return referenceLlama(cfg, layer, x, seq, null, p);
    }

    private static double[] referenceLlama(ModelConfig cfg, int layer, double[] x, int seq, int[] positions, Map<String, double[]> p) {
        ModelConfig.Options o = cfg.options();
        double[] freq = Reference64.ropeFrequencies(o.rope(), cfg.headDim(), cfg.ropeTheta(), cfg.maxPositions(), seq);
        int window = layer >= o.windowFromLayer() ? o.slidingWindow() : 0;
        return Reference64.llamaBlock(x, B, seq, cfg.hidden(), cfg.heads(), cfg.kvHeads(), cfg.headDim(), cfg.normEps(), freq,
                Reference64.ropeScale(o.rope()), window, positions, p);
    }

    // ---- helpers between double[] and device tensors ----

    private Tensor tensor(double[] v, int... shape) {
        Tensor t = device.allocate(Category.ACTIVATIONS, shape);
        set(t, v);
        return t;
    }

    private static void set(Tensor t, double[] v) {
        float[] f = new float[v.length];
        for (int i = 0; i < v.length; i++) f[i] = (float) v[i];
        t.copyFrom(f);
    }

    private static double[] get(Tensor t) {
        float[] f = t.toArray();
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) d[i] = f[i];
        return d;
    }

    private Parameter parameter(String name, double[] v, int... shape) {
        Tensor t = device.allocate(Category.PARAMETERS, shape);
        set(t, v);
        return new Parameter(name, t, true);
    }

    /** A sink that records each gradient by parameter name, adding when a tied parameter comes twice. */
    private static GradientSink collect(Map<String, double[]> into) {
        return (p, g) -> into.merge(p.name(), get(g), (a, b) -> {
            double[] s = a.clone();
            for (int i = 0; i < s.length; i++) s[i] += b[i];
            return s;
        });
    }

    /** Runs a float32 side with automatic freeing of every tensor it registers. */
    private Outcome scoped(Function<List<AutoCloseable>, Outcome> body) {
        List<AutoCloseable> owned = new ArrayList<>();
        try {
            return body.apply(owned);
        } finally {
            for (int i = owned.size() - 1; i >= 0; i--) {
                try {
                    owned.get(i).close();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }
        }
    }

    private static <T extends AutoCloseable> T own(List<AutoCloseable> owned, T t) {
        owned.add(t);
        return t;
    }

    // ---- layer checks ----

    private Result linear(String name, SplittableRandom rng, boolean bias) {
        int n = 7, in = 5, out = 6;
        Map<String, double[]> vars = new LinkedHashMap<>();
        vars.put("x", GradientCheck.random(rng, n * in, 1));
        vars.put("w", GradientCheck.random(rng, out * in, 1));
        if (bias) vars.put("b", GradientCheck.random(rng, out, 1));
        return GradientCheck.check(name, vars,
                v -> Reference64.linear(v.get("x"), n, in, v.get("w"), out, v.get("b")),
                (v, dOut) -> scoped(owned -> {
                    Tensor x = own(owned, tensor(v.get("x"), n, in));
                    Linear lin = new Linear(own(owned, parameter("w", v.get("w"), out, in)),
                            bias ? own(owned, parameter("b", v.get("b"), out)) : null);
                    Tensor y = own(owned, device.empty(Category.ACTIVATIONS, n, out));
                    Linear.Saved saved = own(owned, lin.forward(x, y, true));
                    Tensor dy = own(owned, tensor(dOut, n, out));
                    Tensor dx = own(owned, device.allocate(Category.ACTIVATIONS, n, in));
                    Map<String, double[]> grads = new HashMap<>();
                    lin.backward(saved, dy, dx, false, collect(grads));
                    grads.put("x", get(dx));
                    return new Outcome(get(y), grads);
                }), seed);
    }

    /** y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ with W and b frozen; A trained for LoRA, fixed for RSO. */
    private Result lowRankLinear(String name, SplittableRandom rng, boolean trainA) {
        int n = 7, in = 6, out = 5, r = 3;
        float s = trainA ? 0.5f : 1f;
        double[] w = GradientCheck.random(rng, out * in, 1), bias = GradientCheck.random(rng, out, 1);
        double[] fixedA = GradientCheck.random(rng, r * in, 1);
        Map<String, double[]> vars = new LinkedHashMap<>();
        vars.put("x", GradientCheck.random(rng, n * in, 1));
        if (trainA) vars.put("a", GradientCheck.random(rng, r * in, 1));
        vars.put("b", GradientCheck.random(rng, out * r, 1));
        Function<Map<String, double[]>, double[]> aOf = v -> trainA ? v.get("a") : fixedA;
        return GradientCheck.check(name, vars, v -> {
            double[] base = Reference64.linear(v.get("x"), n, in, w, out, bias);
            double[] xa = Reference64.linear(v.get("x"), n, in, aOf.apply(v), r, null);
            double[] low = Reference64.linear(xa, n, r, v.get("b"), out, null);
            for (int i = 0; i < base.length; i++) base[i] += s * low[i];
            return base;
        }, (v, dOut) -> scoped(owned -> {
            Tensor x = own(owned, tensor(v.get("x"), n, in));
            Linear lin = new Linear(own(owned, parameter("w", w, out, in)), own(owned, parameter("bias", bias, out)));
            lin.setLowRank(own(owned, new LowRank(parameter("a", aOf.apply(v), r, in), trainA, parameter("b", v.get("b"), out, r), s)));
            Tensor y = own(owned, device.empty(Category.ACTIVATIONS, n, out));
            Linear.Saved saved = own(owned, lin.forward(x, y, true));
            Tensor dy = own(owned, tensor(dOut, n, out));
            Tensor dx = own(owned, device.allocate(Category.ACTIVATIONS, n, in));
            Map<String, double[]> grads = new HashMap<>();
            lin.backward(saved, dy, dx, false, collect(grads));
            if (grads.containsKey("w") || grads.containsKey("bias") || (!trainA && grads.containsKey("a"))) {
                throw new IllegalStateException(name + ": a frozen matrix got a gradient: " + grads.keySet());
            }
            grads.put("x", get(dx));
            return new Outcome(get(y), grads);
        }), seed);
    }

    private Result norm(String name, SplittableRandom rng, boolean layerNorm) {
        int n = 5, c = 9;
        float eps = 1e-5f;
        Map<String, double[]> vars = new LinkedHashMap<>();
        vars.put("x", GradientCheck.random(rng, n * c, 2));
        vars.put("gain", GradientCheck.random(rng, c, 1));
        if (layerNorm) vars.put("bias", GradientCheck.random(rng, c, 1));
        return GradientCheck.check(name, vars,
                v -> layerNorm ? Reference64.layerNorm(v.get("x"), n, c, v.get("gain"), v.get("bias"), eps)
                        : Reference64.rmsNorm(v.get("x"), n, c, v.get("gain"), eps),
                (v, dOut) -> scoped(owned -> {
                    Tensor x = own(owned, tensor(v.get("x"), n, c));
                    Norm norm = new Norm(own(owned, parameter("gain", v.get("gain"), c)),
                            layerNorm ? own(owned, parameter("bias", v.get("bias"), c)) : null, eps);
                    Norm.Out y = norm.forward(x);
                    own(owned, y.y());
                    own(owned, y.stats());
                    Tensor dy = own(owned, tensor(dOut, n, c));
                    Tensor dx = own(owned, device.allocate(Category.ACTIVATIONS, n, c));
                    Map<String, double[]> grads = new HashMap<>();
                    norm.backward(dy, x, y.stats(), dx, collect(grads));
                    grads.put("x", get(dx));
                    return new Outcome(get(y.y()), grads);
                }), seed);
    }

    private Result gelu(String name, SplittableRandom rng) {
        int n = 40;
        Map<String, double[]> vars = new LinkedHashMap<>();
        vars.put("x", GradientCheck.random(rng, n, 4));
        return GradientCheck.check(name, vars, v -> Reference64.geluTanh(v.get("x")),
                (v, dOut) -> scoped(owned -> {
                    Tensor x = own(owned, tensor(v.get("x"), n));
                    Tensor y = own(owned, device.allocate(Category.ACTIVATIONS, n));
                    device.gelu(x, y);
                    Tensor dy = own(owned, tensor(dOut, n));
                    Tensor dx = own(owned, device.allocate(Category.ACTIVATIONS, n));
                    device.geluBackward(x, dy, dx);
                    return new Outcome(get(y), Map.of("x", get(dx)));
                }), seed);
    }

    private Result swiglu(String name, SplittableRandom rng) {
        int n = 40;
        Map<String, double[]> vars = new LinkedHashMap<>();
        vars.put("gate", GradientCheck.random(rng, n, 4));
        vars.put("up", GradientCheck.random(rng, n, 2));
        return GradientCheck.check(name, vars, v -> Reference64.swiglu(v.get("gate"), v.get("up")),
                (v, dOut) -> scoped(owned -> {
                    Tensor g = own(owned, tensor(v.get("gate"), n));
                    Tensor u = own(owned, tensor(v.get("up"), n));
                    Tensor y = own(owned, device.allocate(Category.ACTIVATIONS, n));
                    device.swiglu(g, u, y);
                    Tensor dy = own(owned, tensor(dOut, n));
                    Tensor dg = own(owned, device.allocate(Category.ACTIVATIONS, n));
                    Tensor du = own(owned, device.allocate(Category.ACTIVATIONS, n));
                    device.swigluBackward(g, u, dy, dg, du);
                    return new Outcome(get(y), Map.of("gate", get(dg), "up", get(du)));
                }), seed);
    }

    /** The rope kernel with the given scaling (and position ids, when packed): its backward (scale·Rᵀ) against finite differences. */
    private Result rope(String name, SplittableRandom rng, ModelConfig.Rope scaling, boolean packed) {
        int[] positions = packed ? packed(5) : null;
        int seq = 5, heads = 3, hd = 8, n = B * seq, w = heads * hd;
        double theta = 10000.0;
        double[] freq = Reference64.ropeFrequencies(scaling, hd, theta, seq, seq);
        double scale = Reference64.ropeScale(scaling);
        Map<String, double[]> vars = new LinkedHashMap<>();
        vars.put("x", GradientCheck.random(rng, n * w, 1));
        return GradientCheck.check(name, vars, v -> Reference64.rope(v.get("x"), B, seq, heads, hd, freq, scale, positions),
                (v, dOut) -> scoped(owned -> {
                    Tensor x = own(owned, tensor(v.get("x"), n, w));
                    device.rope(x, seq, heads, freq, scale, false, 0, positions);
                    Tensor dx = own(owned, tensor(dOut, n, w));
                    device.rope(dx, seq, heads, freq, scale, true, 0, positions);
                    return new Outcome(get(x), Map.of("x", get(dx)));
                }), seed);
    }

    /** Attention, with two examples packed in each sequence when {@code packed}. */
    private Result attention(String name, SplittableRandom rng, int heads, int kvHeads, int window, boolean packed) {
        int seq = 7, hd = 8, n = B * seq, qw = heads * hd, kvw = kvHeads * hd;
        int[] positions = packed ? packed(seq) : null;
        Map<String, double[]> vars = new LinkedHashMap<>();
        vars.put("q", GradientCheck.random(rng, n * qw, 1));
        vars.put("k", GradientCheck.random(rng, n * kvw, 1));
        vars.put("v", GradientCheck.random(rng, n * kvw, 1));
        return GradientCheck.check(name, vars,
                v -> Reference64.causalAttention(v.get("q"), v.get("k"), v.get("v"), B, seq, heads, kvHeads, hd, window, positions),
                (v, dOut) -> scoped(owned -> {
                    // Causal blocks of 3 queries: the 7 tokens span three, the last one short.
                    CausalAttention att = new CausalAttention(heads, kvHeads, hd, window, 3);
                    Tensor q = own(owned, tensor(v.get("q"), n, qw));
                    Tensor k = own(owned, tensor(v.get("k"), n, kvw));
                    Tensor val = own(owned, tensor(v.get("v"), n, kvw));
                    Tensor out = own(owned, device.allocate(Category.ACTIVATIONS, n, qw));
                    Tensor probs = own(owned, att.forward(Mat.of(q), Mat.of(k), Mat.of(val), B, seq, positions, out, DType.F32));
                    Tensor dy = own(owned, tensor(dOut, n, qw));
                    Tensor dq = own(owned, device.allocate(Category.ACTIVATIONS, n, qw));
                    Tensor dk = own(owned, device.allocate(Category.ACTIVATIONS, n, kvw));
                    Tensor dv = own(owned, device.allocate(Category.ACTIVATIONS, n, kvw));
                    att.backward(dy, probs, Mat.of(q), Mat.of(k), Mat.of(val), B, seq, positions, Mat.of(dq), Mat.of(dk), Mat.of(dv));
                    return new Outcome(get(out), Map.of("q", get(dq), "k", get(dk), "v", get(dv)));
                }), seed);
    }

    private static int[] tokens(SplittableRandom rng, int n, int vocab) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) t[i] = rng.nextInt(vocab);
        return t;
    }

    private Result embedding(String name, SplittableRandom rng, boolean positions, boolean packed) {
        int seq = 5, vocab = 11, c = 6, n = B * seq;
        int[] ids2 = packed ? packed(seq) : null;
        int[] ids = tokens(rng, n, vocab);
        Map<String, double[]> vars = new LinkedHashMap<>();
        vars.put("wte", GradientCheck.random(rng, vocab * c, 1));
        if (positions) vars.put("wpe", GradientCheck.random(rng, 7 * c, 1));
        return GradientCheck.check(name, vars, v -> {
            double[] x = Reference64.embedding(ids, v.get("wte"), c);
            return positions ? Reference64.addPositions(x, B, seq, v.get("wpe"), c, ids2) : x;
        }, (v, dOut) -> scoped(owned -> {
            Embedding emb = new Embedding(own(owned, parameter("wte", v.get("wte"), vocab, c)),
                    positions ? own(owned, parameter("wpe", v.get("wpe"), 7, c)) : null);
            Tensor x = own(owned, emb.forward(ids, seq, 0, ids2));
            Tensor dx = own(owned, tensor(dOut, n, c));
            Map<String, double[]> grads = new HashMap<>();
            emb.backward(ids, seq, ids2, dx, collect(grads));
            return new Outcome(get(x), grads);
        }), seed);
    }

    private Result head(String name, SplittableRandom rng, Family family) {
        int n = 7, c = 8, vocab = 13;
        float eps = 1e-5f;
        boolean ln = family == Family.GPT2;
        int[] targets = tokens(rng, n, vocab);
        Map<String, double[]> vars = new LinkedHashMap<>();
        vars.put("x", GradientCheck.random(rng, n * c, 2));
        vars.put("gain", GradientCheck.random(rng, c, 1));
        if (ln) vars.put("bias", GradientCheck.random(rng, c, 1));
        vars.put("w", GradientCheck.random(rng, vocab * c, 1));
        return GradientCheck.check(name, vars, v -> {
            double[] y = ln ? Reference64.layerNorm(v.get("x"), n, c, v.get("gain"), v.get("bias"), eps)
                    : Reference64.rmsNorm(v.get("x"), n, c, v.get("gain"), eps);
            double[] z = Reference64.linear(y, n, c, v.get("w"), vocab, null);
            return new double[] {Reference64.crossEntropy(z, n, vocab, targets)};
        }, (v, dOut) -> scoped(owned -> {
            Parameter g = own(owned, parameter("gain", v.get("gain"), c));
            Parameter b = ln ? own(owned, parameter("bias", v.get("bias"), c)) : null;
            LmHead head = new LmHead(new Norm(g, b, eps), ln ? List.of(g, b) : List.of(g),
                    own(owned, parameter("w", v.get("w"), vocab, c)));
            Tensor x = own(owned, tensor(v.get("x"), n, c));
            Map<String, double[]> grads = new HashMap<>();
            LmHead.Result r = head.lossAndBackward(x, targets, (float) dOut[0], collect(grads));
            grads.put("x", get(own(owned, r.dx())));
            return new Outcome(new double[] {r.loss()}, grads);
        }), seed);
    }

    // ---- blocks and whole models ----

    /** Variables for every parameter of the given list, with the parameters' own (float32) values. */
    static Map<String, double[]> parameterVariables(List<Parameter> ps) {
        Map<String, double[]> vars = new LinkedHashMap<>();
        for (Parameter p : ps) vars.put(p.name(), get(p.value()));
        return vars;
    }

    private static void load(List<Parameter> ps, Map<String, double[]> values) {
        for (Parameter p : ps) set(p.value(), values.get(p.name()));
    }

    /** Initial weights are 0.02-scale; perturbed to 0.3 so every path of the block carries signal. */
    private static void spread(Map<String, double[]> vars, SplittableRandom rng) {
        vars.replaceAll((k, v) -> GradientCheck.random(rng, v.length, 0.3));
    }

    private Result block(String name, SplittableRandom rng, ModelConfig cfg, boolean recompute, boolean packed) {
        int seq = cfg.family() == Family.GPT2 ? 7 : 5, n = B * seq, c = cfg.hidden();
        int[] positions = packed ? packed(seq) : null;
        try (TransformerBlock block = Model.block(cfg, 0, new Initializer(device, seed))) {
            block.setRecompute(recompute);
            String prefix = cfg.family() == Family.GPT2 ? "transformer.h.0." : "model.layers.0.";
            Map<String, double[]> vars = parameterVariables(block.parameters());
            spread(vars, rng);
            vars.put("x", GradientCheck.random(rng, n * c, 1));
            Function<Map<String, double[]>, double[]> ref = v -> {
                Map<String, double[]> p = new HashMap<>();
                v.forEach((k, a) -> p.put(k.startsWith(prefix) ? k.substring(prefix.length()) : k, a));
                return cfg.family() == Family.GPT2
                        ? Reference64.gpt2Block(v.get("x"), B, seq, c, cfg.heads(), cfg.normEps(), positions, p)
                        : referenceLlama(cfg, 0, v.get("x"), seq, positions, p);
            };
            return GradientCheck.check(name, vars, ref, (v, dOut) -> scoped(owned -> {
                load(block.parameters(), v);
                Tensor x = own(owned, tensor(v.get("x"), n, c));
                TransformerBlock.Forward f = block.forward(x, B, seq, positions);
                Tensor out = own(owned, f.output());
                Tensor dy = own(owned, tensor(dOut, n, c));
                Map<String, double[]> grads = new HashMap<>();
                Tensor dx = own(owned, block.backward(f, dy, collect(grads)));
                grads.put("x", get(dx));
                return new Outcome(get(out), grads);
            }), seed);
        }
    }

    /** The block's float64 output with the given parameters (keys with the block's prefix). */
    private static double[] referenceBlock(ModelConfig cfg, double[] x, int seq, Map<String, double[]> named) {
        String prefix = cfg.family() == Family.GPT2 ? "transformer.h.0." : "model.layers.0.";
        Map<String, double[]> p = new HashMap<>();
        named.forEach((k, a) -> p.put(k.startsWith(prefix) ? k.substring(prefix.length()) : k, a));
        int c = cfg.hidden();
        return cfg.family() == Family.GPT2
                ? Reference64.gpt2Block(x, B, seq, c, cfg.heads(), cfg.normEps(), p)
                : referenceLlama(cfg, 0, x, seq, p);
    }

    /** A frozen block: only the input gradient, from fewer saved activations, with no sink at all. */
    private Result frozenBlock(String name, SplittableRandom rng, ModelConfig cfg) {
        int seq = 7, n = B * seq, c = cfg.hidden();
        try (TransformerBlock block = Model.block(cfg, 0, new Initializer(device, seed))) {
            Map<String, double[]> weights = parameterVariables(block.parameters());
            spread(weights, rng);
            load(block.parameters(), weights);
            block.setTrainable(false);
            Map<String, double[]> vars = new LinkedHashMap<>();
            vars.put("x", GradientCheck.random(rng, n * c, 1));
            return GradientCheck.check(name, vars, v -> referenceBlock(cfg, v.get("x"), seq, weights),
                    (v, dOut) -> scoped(owned -> {
                        Tensor x = own(owned, tensor(v.get("x"), n, c));
                        TransformerBlock.Forward f = block.forward(x, B, seq);
                        Tensor out = own(owned, f.output());
                        Tensor dy = own(owned, tensor(dOut, n, c));
                        Tensor dx = own(owned, block.backward(f, dy, null));
                        return new Outcome(get(out), Map.of("x", get(dx)));
                    }), seed);
        }
    }

    /** Every linear of the block in an RSO subspace of rank 2: gradients of B against W + B·Pᵀ in float64. */
    private Result subspaceBlock(String name, SplittableRandom rng, ModelConfig cfg) {
        int seq = 5, n = B * seq, c = cfg.hidden(), rank = 2;
        try (TransformerBlock block = Model.block(cfg, 0, new Initializer(device, seed))) {
            Map<String, double[]> weights = parameterVariables(block.parameters());
            spread(weights, rng);
            load(block.parameters(), weights);
            List<LowRank> terms = new ArrayList<>();
            for (Linear l : block.linears()) terms.add(Adapters.subspace(l, rank, seed));
            try {
                Map<String, double[]> vars = new LinkedHashMap<>();
                vars.put("x", GradientCheck.random(rng, n * c, 1));
                for (LowRank t : terms) vars.put(t.b().name(), GradientCheck.random(rng, (int) t.b().size(), 0.3));
                Function<Map<String, double[]>, double[]> ref = v -> {
                    Map<String, double[]> merged = new HashMap<>(weights);
                    for (int i = 0; i < terms.size(); i++) {
                        Linear l = block.linears().get(i);
                        LowRank t = terms.get(i);
                        double[] bp = Reference64.linear(v.get(t.b().name()), l.out(), rank,
                                transpose(get(t.a().value()), rank, l.in()), l.in(), null);
                        merged.put(l.weight().name(), Reference64.add(weights.get(l.weight().name()), bp));
                    }
                    return referenceBlock(cfg, v.get("x"), seq, merged);
                };
                return GradientCheck.check(name, vars, ref, (v, dOut) -> scoped(owned -> {
                    for (LowRank t : terms) set(t.b().value(), v.get(t.b().name()));
                    Tensor x = own(owned, tensor(v.get("x"), n, c));
                    TransformerBlock.Forward f = block.forward(x, B, seq);
                    Tensor out = own(owned, f.output());
                    Tensor dy = own(owned, tensor(dOut, n, c));
                    Map<String, double[]> grads = new HashMap<>();
                    Tensor dx = own(owned, block.backward(f, dy, collect(grads)));
                    for (Linear l : block.linears()) {
                        if (grads.containsKey(l.weight().name())) {
                            throw new IllegalStateException(name + ": frozen " + l.weight().name() + " got a gradient");
                        }
                    }
                    grads.put("x", get(dx));
                    return new Outcome(get(out), grads);
                }), seed);
            } finally {
                for (LowRank t : terms) t.close();
            }
        }
    }

    private static double[] transpose(double[] m, int rows, int cols) {
        double[] t = new double[m.length];
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) t[j * rows + i] = m[i * cols + j];
        return t;
    }

    /** The whole model's mean loss in float64, composed from the reference pieces. */
    static double referenceLoss(ModelConfig cfg, Map<String, double[]> p, int[] ids, int[] targets, int[] positions, int seq) {
        int c = cfg.hidden(), n = ids.length;
        boolean gpt2 = cfg.family() == Family.GPT2;
        double[] wte = p.get(gpt2 ? "transformer.wte.weight" : "model.embed_tokens.weight");
        double[] x = Reference64.embedding(ids, wte, c);
        if (gpt2) x = Reference64.addPositions(x, B, seq, p.get("transformer.wpe.weight"), c, positions);
        for (int l = 0; l < cfg.layers(); l++) {
            String prefix = gpt2 ? "transformer.h." + l + "." : "model.layers." + l + ".";
            Map<String, double[]> bp = new HashMap<>();
            p.forEach((k, a) -> {
                if (k.startsWith(prefix)) bp.put(k.substring(prefix.length()), a);
            });
            x = gpt2 ? Reference64.gpt2Block(x, B, seq, c, cfg.heads(), cfg.normEps(), positions, bp)
                    : referenceLlama(cfg, l, x, seq, positions, bp);
        }
        double[] y = gpt2 ? Reference64.layerNorm(x, n, c, p.get("transformer.ln_f.weight"), p.get("transformer.ln_f.bias"), cfg.normEps())
                : Reference64.rmsNorm(x, n, c, p.get("model.norm.weight"), cfg.normEps());
        double[] w = cfg.tiedEmbeddings() ? wte : p.get("lm_head.weight");
        return Reference64.crossEntropy(Reference64.linear(y, n, c, w, cfg.vocabSize(), null), n, cfg.vocabSize(), targets);
    }

    private Result model(String name, SplittableRandom rng, ModelConfig cfg, boolean masked) {
        return model(name, rng, cfg, masked, false);
    }

    /**
     * The whole model against the float64 loss; {@code masked}: each row's first half is a prompt the loss skips;
     * {@code packed}: two examples to a row, with their position ids.
     */
    private Result model(String name, SplittableRandom rng, ModelConfig cfg, boolean masked, boolean packed) {
        int seq = 6, n = B * seq;
        int[] positions = packed ? packed(seq) : null;
        int[] ids = tokens(rng, n, cfg.vocabSize()), targets = tokens(rng, n, cfg.vocabSize());
        if (masked) for (int i = 0; i < n; i++) if (i % seq < seq / 2) targets[i] = Batch.IGNORED;
        try (Model model = Model.initialize(cfg, device, seed)) {
            Map<String, double[]> vars = parameterVariables(model.parameters());
            spread(vars, rng);
            return GradientCheck.check(name, vars, v -> new double[] {referenceLoss(cfg, v, ids, targets, positions, seq)},
                    (v, dOut) -> {
                        load(model.parameters(), v);
                        Map<String, double[]> grads = new HashMap<>();
                        double loss = model.forwardBackward(ids, targets, positions, B, seq, (float) dOut[0],
                                Model.Sinks.all(collect(grads)));
                        return new Outcome(new double[] {loss}, grads);
                    }, seed);
        }
    }

    /** Every check, in order, each result also handed to {@code progress} as it completes. */
    public List<Result> runAll(Consumer<Result> progress) {
        List<Result> results = new ArrayList<>();
        for (String name : names()) {
            Result r = run(name);
            progress.accept(r);
            results.add(r);
        }
        return results;
    }
}
