package relay.stages.check;

import java.util.Map;
import java.util.function.ToDoubleFunction;
import relay.stages.model.ModelConfig;

/**
 * Plain float64 reference for transformer forward math, used as the oracle for the float32 layers.
 *
 * <p>Everything is written as simple nested loops over row-major {@code double[]} arrays so that it
 * can be checked by reading. "x[N,C]" means N rows of C. Linear weights are stored [out, in] as in
 * torch {@code nn.Linear}: y = x·Wᵀ + b. Every method returns a new array and never modifies its
 * inputs.
 */
public final class Reference64 {

    private Reference64() {
    }

    /** y[N,out] = x[N,in] · w[out,in]ᵀ + bias[out]; bias may be null. */
    public static double[] linear(double[] x, int n, int in, double[] w, int out, double[] bias) {
        double[] y = new double[n * out];
        for (int r = 0; r < n; r++) {
            for (int o = 0; o < out; o++) {
                double s = bias == null ? 0.0 : bias[o];
                for (int i = 0; i < in; i++) {
                    s += x[r * in + i] * w[o * in + i];
                }
                y[r * out + o] = s;
            }
        }
        return y;
    }

    /** Per-row LayerNorm with biased variance (divide by c), as in torch. */
    public static double[] layerNorm(double[] x, int n, int c, double[] gain, double[] bias, double eps) {
        double[] y = new double[n * c];
        for (int r = 0; r < n; r++) {
            double mean = 0.0;
            for (int i = 0; i < c; i++) {
                mean += x[r * c + i];
            }
            mean /= c;
            double var = 0.0;
            for (int i = 0; i < c; i++) {
                double d = x[r * c + i] - mean;
                var += d * d;
            }
            var /= c;
            double inv = 1.0 / Math.sqrt(var + eps);
            for (int i = 0; i < c; i++) {
                y[r * c + i] = (x[r * c + i] - mean) * inv * gain[i] + bias[i];
            }
        }
        return y;
    }

    /** Per-row RMSNorm (LLaMA): y = x / sqrt(mean(x²) + eps) · gain. */
    public static double[] rmsNorm(double[] x, int n, int c, double[] gain, double eps) {
        double[] y = new double[n * c];
        for (int r = 0; r < n; r++) {
            double ms = 0.0;
            for (int i = 0; i < c; i++) {
                ms += x[r * c + i] * x[r * c + i];
            }
            ms /= c;
            double inv = 1.0 / Math.sqrt(ms + eps);
            for (int i = 0; i < c; i++) {
                y[r * c + i] = x[r * c + i] * inv * gain[i];
            }
        }
        return y;
    }

    /** GPT-2 "gelu_new": 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³))). */
    public static double[] geluTanh(double[] x) {
        double k = Math.sqrt(2.0 / Math.PI);
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            double v = x[i];
            y[i] = 0.5 * v * (1.0 + Math.tanh(k * (v + 0.044715 * v * v * v)));
        }
        return y;
    }

    /** silu(gate)·up elementwise, with silu(z) = z / (1 + e^{-z}). */
    public static double[] swiglu(double[] gate, double[] up) {
        double[] y = new double[gate.length];
        for (int i = 0; i < gate.length; i++) {
            double g = gate[i];
            y[i] = g / (1.0 + Math.exp(-g)) * up[i];
        }
        return y;
    }

    /** Elementwise a + b (residual connections). */
    public static double[] add(double[] a, double[] b) {
        double[] y = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            y[i] = a[i] + b[i];
        }
        return y;
    }

    /**
     * Rotary embedding, Hugging Face LLaMA "rotate_half" convention: element i of a head is paired
     * with element i + headDim/2 (not with its neighbour). x is [batch*seq, heads*headDim] and the
     * position is the token index t within its own sequence.
     */
    public static double[] rope(double[] x, int batch, int seq, int heads, int headDim, double theta) {
        return rope(x, batch, seq, heads, headDim, ropeFrequencies(ModelConfig.Rope.NONE, headDim, theta, seq, seq), 1.0);
    }

    /**
     * The rotary frequencies θ_i (i &lt; headDim/2) of Hugging Face transformers' rope types for a sequence of
     * {@code length} positions, from the formulas (modeling_rope_utils):
     * <ul>
     * <li>default: θ_i = base^(−2i/d);
     * <li>linear: θ_i / factor;
     * <li>dynamic (NTK): for length L &gt; maxPositions the base becomes base·(factor·L/maxPositions − (factor − 1))^(d/(d−2));
     * <li>llama3: with r = original / wavelength (wavelength 2π/θ_i), θ_i/factor where r &lt; low_freq_factor, θ_i where
     *     r &gt; high_freq_factor, and between them (1 − s)·θ_i/factor + s·θ_i with s = (r − low)/(high − low);
     * <li>yarn: the dimension index where a frequency turns b times over the original length is
     *     d·ln(original / (2πb)) / (2 ln base); between those of beta_fast (rounded down) and beta_slow (rounded up)
     *     a ramp over i goes from θ_i (kept) to θ_i/factor (interpolated).
     * </ul>
     */
    public static double[] ropeFrequencies(ModelConfig.Rope rope, int headDim, double theta, int maxPositions, int length) {
        int half = headDim / 2;
        double base = theta;
        if (rope.type().equals("dynamic") && length > maxPositions) {
            double grow = rope.factor() * length / maxPositions - (rope.factor() - 1);
            base = theta * Math.exp(Math.log(grow) * headDim / (headDim - 2));
        }
        double[] f = new double[half];
        for (int i = 0; i < half; i++) {
            double plain = Math.exp(-2.0 * i / headDim * Math.log(base));
            double scaled = plain / rope.factor();
            switch (rope.type()) {
                case "linear" -> f[i] = scaled;
                case "llama3" -> {
                    double r = rope.originalMaxPositions() / (2 * Math.PI / plain);
                    double lo = rope.lowFreqFactor(), hi = rope.highFreqFactor();
                    if (r < lo) {
                        f[i] = scaled;
                    } else if (r > hi) {
                        f[i] = plain;
                    } else {
                        double s = (r - lo) / (hi - lo);
                        f[i] = (1 - s) * scaled + s * plain;
                    }
                }
                case "yarn" -> {
                    double original = rope.originalMaxPositions() > 0 ? rope.originalMaxPositions() : maxPositions;
                    double bFast = rope.betaFast() == 0 ? 32 : rope.betaFast(), bSlow = rope.betaSlow() == 0 ? 1 : rope.betaSlow();
                    double from = headDim * Math.log(original / (2 * Math.PI * bFast)) / (2 * Math.log(theta));
                    double to = headDim * Math.log(original / (2 * Math.PI * bSlow)) / (2 * Math.log(theta));
                    if (rope.truncate()) {
                        from = Math.floor(from);
                        to = Math.ceil(to);
                    }
                    from = Math.max(from, 0);
                    to = Math.min(to, headDim - 1);
                    if (to == from) to += 0.001;
                    double t = (i - from) / (to - from);
                    double interpolated = t <= 0 ? 0 : t >= 1 ? 1 : t;
                    f[i] = interpolated * scaled + (1 - interpolated) * plain;
                }
                default -> f[i] = plain;
            }
        }
        return f;
    }

    /**
     * What cos and sin are multiplied by: for yarn attention_factor, or mscale(factor, mscale) / mscale(factor,
     * mscale_all_dim) when both are given, or mscale(factor, 1), with mscale(s, m) = 0.1·m·ln s + 1 (1 for s ≤ 1).
     */
    public static double ropeScale(ModelConfig.Rope rope) {
        if (!rope.type().equals("yarn")) return 1.0;
        if (rope.attentionFactor() > 0) return rope.attentionFactor();
        double s = rope.factor();
        if (s <= 1) return 1.0;
        if (rope.mscale() != 0 && rope.mscaleAllDim() != 0) {
            return (0.1 * rope.mscale() * Math.log(s) + 1) / (0.1 * rope.mscaleAllDim() * Math.log(s) + 1);
        }
        return 0.1 * Math.log(s) + 1;
    }

    /** Rotary embedding as above with the given frequencies, cos and sin multiplied by {@code scale}. */
    public static double[] rope(double[] x, int batch, int seq, int heads, int headDim, double[] freq, double scale) {
        return rope(x, batch, seq, heads, headDim, freq, scale, null);
    }

    /** The same with position ids: token t of sequence b turns by positions[b·seq + t] instead of t (null: by t). */
    public static double[] rope(double[] x, int batch, int seq, int heads, int headDim, double[] freq, double scale, int[] positions) {
        int half = headDim / 2;
        int width = heads * headDim;
        double[] y = new double[x.length];
        for (int b = 0; b < batch; b++) {
            for (int t = 0; t < seq; t++) {
                int row = (b * seq + t) * width;
                for (int h = 0; h < heads; h++) {
                    int base = row + h * headDim;
                    int position = positions == null ? t : positions[b * seq + t];
                    for (int i = 0; i < half; i++) {
                        double angle = position * freq[i];
                        double cos = scale * Math.cos(angle);
                        double sin = scale * Math.sin(angle);
                        double x1 = x[base + i];
                        double x2 = x[base + i + half];
                        y[base + i] = x1 * cos - x2 * sin;
                        y[base + i + half] = x2 * cos + x1 * sin;
                    }
                }
            }
        }
        return y;
    }

    /**
     * Causal grouped-query attention. q is [batch*seq, heads*headDim]; k and v are
     * [batch*seq, kvHeads*headDim]. Query head h reads kv head h / (heads/kvHeads). Token t attends
     * to tokens 0..t of its own sequence. Output has the same token-major layout as q.
     */
    public static double[] causalAttention(double[] q, double[] k, double[] v, int batch, int seq,
                                           int heads, int kvHeads, int headDim) {
        return causalAttention(q, k, v, batch, seq, heads, kvHeads, headDim, 0);
    }

    /** The same with a sliding window: token t attends to tokens s with t − window &lt; s ≤ t (all s ≤ t for 0). */
    public static double[] causalAttention(double[] q, double[] k, double[] v, int batch, int seq,
                                           int heads, int kvHeads, int headDim, int window) {
        return causalAttention(q, k, v, batch, seq, heads, kvHeads, headDim, window, null);
    }

    /**
     * Which example each token belongs to, by its position ids: a new one begins wherever the id is 0 (null:
     * one example per sequence).
     */
    static int[] examples(int[] positions, int batch, int seq) {
        int[] example = new int[batch * seq];
        int count = 0;
        for (int i = 0; i < example.length; i++) {
            if (positions == null ? i % seq == 0 : positions[i] == 0) count++;
            example[i] = count;
        }
        return example;
    }

    /** The same with packed examples: token t attends only to tokens s of its own example (as position ids tell). */
    public static double[] causalAttention(double[] q, double[] k, double[] v, int batch, int seq,
                                           int heads, int kvHeads, int headDim, int window, int[] positions) {
        int[] example = examples(positions, batch, seq);
        int qWidth = heads * headDim;
        int kvWidth = kvHeads * headDim;
        int group = heads / kvHeads;
        double scale = 1.0 / Math.sqrt(headDim);
        double[] out = new double[batch * seq * qWidth];
        double[] scores = new double[seq];
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                int kvh = h / group;
                for (int t = 0; t < seq; t++) {
                    int qBase = (b * seq + t) * qWidth + h * headDim;
                    double max = Double.NEGATIVE_INFINITY;
                    int first = window > 0 ? Math.max(0, t - window + 1) : 0;
                    while (example[b * seq + first] != example[b * seq + t]) first++;
                    for (int s = first; s <= t; s++) {
                        int kBase = (b * seq + s) * kvWidth + kvh * headDim;
                        double dotQk = 0.0;
                        for (int d = 0; d < headDim; d++) {
                            dotQk += q[qBase + d] * k[kBase + d];
                        }
                        scores[s] = dotQk * scale;
                        max = Math.max(max, scores[s]);
                    }
                    // Subtracting the max leaves softmax unchanged and keeps exp() from overflowing.
                    double sum = 0.0;
                    for (int s = first; s <= t; s++) {
                        scores[s] = Math.exp(scores[s] - max);
                        sum += scores[s];
                    }
                    for (int s = first; s <= t; s++) {
                        double weight = scores[s] / sum;
                        int vBase = (b * seq + s) * kvWidth + kvh * headDim;
                        for (int d = 0; d < headDim; d++) {
                            out[qBase + d] += weight * v[vBase + d];
                        }
                    }
                }
            }
        }
        return out;
    }

    /** Looks up rows of table[vocab, dim]; result is [tokens.length, dim]. */
    public static double[] embedding(int[] tokens, double[] table, int dim) {
        double[] y = new double[tokens.length * dim];
        for (int r = 0; r < tokens.length; r++) {
            for (int i = 0; i < dim; i++) {
                y[r * dim + i] = table[tokens[r] * dim + i];
            }
        }
        return y;
    }

    /** GPT-2 learned positions: adds wpe row t to token t of every sequence. */
    public static double[] addPositions(double[] x, int batch, int seq, double[] wpe, int dim) {
        return addPositions(x, batch, seq, wpe, dim, null);
    }

    /** The same with position ids: wpe row positions[b·seq + t] (null: row t). */
    public static double[] addPositions(double[] x, int batch, int seq, double[] wpe, int dim, int[] positions) {
        double[] y = new double[x.length];
        for (int b = 0; b < batch; b++) {
            for (int t = 0; t < seq; t++) {
                int row = (b * seq + t) * dim, position = positions == null ? t : positions[b * seq + t];
                for (int i = 0; i < dim; i++) {
                    y[row + i] = x[row + i] + wpe[position * dim + i];
                }
            }
        }
        return y;
    }

    /** Mean over the counted rows (non-negative targets) of −log softmax(logits)[target], via log-sum-exp with max subtraction. */
    public static double crossEntropy(double[] logits, int n, int vocab, int[] targets) {
        double total = 0.0;
        int counted = 0;
        for (int r = 0; r < n; r++) {
            if (targets[r] < 0) continue; // not counted (a prompt token or padding)
            counted++;
            int base = r * vocab;
            double max = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < vocab; i++) {
                max = Math.max(max, logits[base + i]);
            }
            double sum = 0.0;
            for (int i = 0; i < vocab; i++) {
                sum += Math.exp(logits[base + i] - max);
            }
            // −log p = log Σ e^(z_i − max) − (z_target − max); both terms stay small.
            total += Math.log(sum) - (logits[base + targets[r]] - max);
        }
        return counted == 0 ? 0.0 : total / counted;
    }

    /**
     * Hugging Face GPT-2 block (pre-LN): h = x + attn(ln_1(x)); out = h + mlp(ln_2(h)). Weights use
     * the [out, in] layout; c_attn's output columns are [q | k | v], each dim wide.
     */
    public static double[] gpt2Block(double[] x, int batch, int seq, int dim, int heads, double eps,
                                     Map<String, double[]> p) {
        return gpt2Block(x, batch, seq, dim, heads, eps, null, p);
    }

    /** The same over packed examples with their position ids (null: none). */
    public static double[] gpt2Block(double[] x, int batch, int seq, int dim, int heads, double eps, int[] positions,
                                     Map<String, double[]> p) {
        int n = batch * seq;
        int headDim = dim / heads;

        double[] n1 = layerNorm(x, n, dim, p.get("ln_1.weight"), p.get("ln_1.bias"), eps);
        double[] qkv = linear(n1, n, dim, p.get("attn.c_attn.weight"), 3 * dim, p.get("attn.c_attn.bias"));
        double[] q = new double[n * dim];
        double[] k = new double[n * dim];
        double[] v = new double[n * dim];
        for (int r = 0; r < n; r++) {
            for (int i = 0; i < dim; i++) {
                q[r * dim + i] = qkv[r * 3 * dim + i];
                k[r * dim + i] = qkv[r * 3 * dim + dim + i];
                v[r * dim + i] = qkv[r * 3 * dim + 2 * dim + i];
            }
        }
        double[] attn = causalAttention(q, k, v, batch, seq, heads, heads, headDim, 0, positions);
        double[] proj = linear(attn, n, dim, p.get("attn.c_proj.weight"), dim, p.get("attn.c_proj.bias"));
        double[] h = add(x, proj);

        double[] n2 = layerNorm(h, n, dim, p.get("ln_2.weight"), p.get("ln_2.bias"), eps);
        double[] fcBias = p.get("mlp.c_fc.bias");
        int hidden = fcBias.length;
        double[] fc = linear(n2, n, dim, p.get("mlp.c_fc.weight"), hidden, fcBias);
        double[] act = geluTanh(fc);
        double[] mlp = linear(act, n, hidden, p.get("mlp.c_proj.weight"), dim, p.get("mlp.c_proj.bias"));
        return add(h, mlp);
    }

    /**
     * Hugging Face LLaMA decoder layer: h = x + o_proj(attn(rope(q), rope(k), v)) on rmsNorm(x);
     * out = h + down_proj(silu(gate_proj(n2))·up_proj(n2)) with n2 = rmsNorm(h). No biases, plain rotary.
     */
    public static double[] llamaBlock(double[] x, int batch, int seq, int dim, int heads, int kvHeads,
                                      int headDim, double eps, double ropeTheta, Map<String, double[]> p) {
        return llamaBlock(x, batch, seq, dim, heads, kvHeads, headDim, eps,
                ropeFrequencies(ModelConfig.Rope.NONE, headDim, ropeTheta, seq, seq), 1.0, 0, null, p);
    }

    /**
     * The LLaMA-family layer with rotary frequencies {@code freq} and cos/sin multiplier {@code ropeScale}, a
     * sliding {@code window} (0 for none), and a bias on each projection whose "….bias" is in p (Llama's
     * attention_bias and mlp_bias, Qwen2's q, k and v); {@code positions} the position ids of packed examples (null: none).
     */
    public static double[] llamaBlock(double[] x, int batch, int seq, int dim, int heads, int kvHeads, int headDim, double eps,
                                      double[] freq, double ropeScale, int window, int[] positions, Map<String, double[]> p) {
        int n = batch * seq;
        int qWidth = heads * headDim;
        int kvWidth = kvHeads * headDim;

        double[] n1 = rmsNorm(x, n, dim, p.get("input_layernorm.weight"), eps);
        double[] q = linear(n1, n, dim, p.get("self_attn.q_proj.weight"), qWidth, p.get("self_attn.q_proj.bias"));
        double[] k = linear(n1, n, dim, p.get("self_attn.k_proj.weight"), kvWidth, p.get("self_attn.k_proj.bias"));
        double[] v = linear(n1, n, dim, p.get("self_attn.v_proj.weight"), kvWidth, p.get("self_attn.v_proj.bias"));
        q = rope(q, batch, seq, heads, headDim, freq, ropeScale, positions);
        k = rope(k, batch, seq, kvHeads, headDim, freq, ropeScale, positions);
        double[] attn = causalAttention(q, k, v, batch, seq, heads, kvHeads, headDim, window, positions);
        double[] o = linear(attn, n, qWidth, p.get("self_attn.o_proj.weight"), dim, p.get("self_attn.o_proj.bias"));
        double[] h = add(x, o);

        double[] n2 = rmsNorm(h, n, dim, p.get("post_attention_layernorm.weight"), eps);
        double[] gateW = p.get("mlp.gate_proj.weight");
        int hidden = gateW.length / dim;
        double[] gate = linear(n2, n, dim, gateW, hidden, p.get("mlp.gate_proj.bias"));
        double[] up = linear(n2, n, dim, p.get("mlp.up_proj.weight"), hidden, p.get("mlp.up_proj.bias"));
        double[] act = swiglu(gate, up);
        double[] down = linear(act, n, hidden, p.get("mlp.down_proj.weight"), dim, p.get("mlp.down_proj.bias"));
        return add(h, down);
    }

    /**
     * Central finite differences (f(x + h·e_i) − f(x − h·e_i)) / (2h) for each listed index; result[j]
     * belongs to indices[j]. Probes a private copy of x, restoring each element after use.
     */
    public static double[] centralDifference(ToDoubleFunction<double[]> f, double[] x, int[] indices, double h) {
        double[] probe = x.clone();
        double[] grad = new double[indices.length];
        for (int j = 0; j < indices.length; j++) {
            int i = indices[j];
            double saved = probe[i];
            probe[i] = saved + h;
            double plus = f.applyAsDouble(probe);
            probe[i] = saved - h;
            double minus = f.applyAsDouble(probe);
            probe[i] = saved;
            grad[j] = (plus - minus) / (2.0 * h);
        }
        return grad;
    }

    /** Σ a[i]·b[i]; reduces a tensor output to a scalar loss L = Σ out·r for a random r. */
    public static double dot(double[] a, double[] b) {
        double s = 0.0;
        for (int i = 0; i < a.length; i++) {
            s += a[i] * b[i];
        }
        return s;
    }
}
