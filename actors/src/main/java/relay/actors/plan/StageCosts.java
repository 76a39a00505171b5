package relay.actors.plan;

import java.util.Arrays;
import java.util.List;
import java.util.function.LongSupplier;
import relay.actors.TraceEvent;
import relay.optimizers.UpdateRule;
import relay.stages.layers.GradientSink;
import relay.stages.layers.TransformerBlock;
import relay.stages.model.Embedding;
import relay.stages.model.Initializer;
import relay.stages.model.LmHead;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.model.Precision;
import relay.stages.tensor.Device;
import relay.stages.tensor.Tensor;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.tensor.sim.Roofline;
import relay.stages.tensor.sim.SimDevice;

/**
 * The cost of each pipeline stage — embedding, a block, the head — in seconds: its forward, its input gradient
 * (B) and its weight gradients (W) on one microbatch, measured on a CPU device of the pipeline's devices' threads,
 * read from a pipeline's trace, or modelled by a roofline on a simulated device. A FLOP count misjudges the head (large, efficient products plus a softmax over the vocabulary),
 * so placement balances these instead. The head's backward is fused into its forward; the embedding's backward
 * has no input gradient, so it is all B.
 */
public record StageCosts(double[] forward, double[] backward, double[] weights) {

    /** Each stage's whole cost, forward and backward. */
    public double[] total() {
        double[] t = new double[forward.length];
        for (int s = 0; s < t.length; s++) t[s] = forward[s] + backward[s] + weights[s];
        return t;
    }

    /**
     * Each stage's whole cost under a LISA draw: a frozen block computes no weight gradient, so it costs its
     * forward and input gradient only. {@code activeBlocks} are block indices, sorted.
     */
    public double[] underDraw(int[] activeBlocks) {
        double[] t = total();
        for (int b = 0; b < t.length - 2; b++) if (Arrays.binarySearch(activeBlocks, b) < 0) t[b + 1] -= weights[b + 1];
        return t;
    }

    /**
     * The stage costs on this machine for a model stored in {@code precision}: each part's median wall time over five
     * runs on a CPU device of {@code threads} threads (a pipeline's devices').
     */
    public static StageCosts measure(ModelConfig cfg, int batch, int seq, Precision precision, int threads) {
        try (CpuDevice d = new CpuDevice("calibration", threads)) {
            return time(cfg, batch, seq, false, precision, (p, g) -> { }, d, System::nanoTime, 5);
        }
    }

    /**
     * The stage costs a pipeline's own trace shows from step {@code fromStep} on: each stage's mean forward,
     * backward and weights span over those steps' microbatches (a stage's track is its index). With a schedule
     * that does not split the backward, the backward span holds the weight gradients too, and weights are 0.
     */
    public static StageCosts fromTrace(List<TraceEvent> events, long fromStep, int stages) {
        double[][] parts = new double[3][stages];
        String[] names = {"forward", "backward", "weights"};
        for (int k = 0; k < 3; k++) {
            for (int s = 0; s < stages; s++) {
                int stage = s;
                String name = names[k];
                // The mean, not the median: a step takes the sum of its spans, the rare slow one (a collection, a preemption) included.
                parts[k][s] = events.stream().filter(e -> e.step() >= fromStep && e.track() == stage && e.name().equals(name))
                        .mapToDouble(e -> e.durationMicros() / 1e6).average().orElse(0);
            }
        }
        return new StageCosts(parts[0], parts[1], parts[2]);
    }

    /** The stage costs a roofline gives: each part's kernels' modelled time on a simulated device, which holds no values. */
    public static StageCosts modelled(ModelConfig cfg, int batch, int seq, Roofline roofline) {
        return modelled(cfg, batch, seq, roofline, Precision.F32);
    }

    /** The same for a model stored in {@code precision}: bfloat16 operands move half the bytes. */
    public static StageCosts modelled(ModelConfig cfg, int batch, int seq, Roofline roofline, Precision precision) {
        return modelled(cfg, batch, seq, roofline, false, null, precision);
    }

    /**
     * The same, with blocks that recompute their activations in backward when {@code recompute}, and each weight
     * gradient applied by {@code rule} the moment it exists (an update in backward, as in eager mode; null: none).
     */
    public static StageCosts modelled(ModelConfig cfg, int batch, int seq, Roofline roofline, boolean recompute, UpdateRule rule,
                                      Precision precision) {
        SimDevice d = new SimDevice("modelled", roofline, 0);
        GradientSink sink = rule == null ? (p, g) -> { } : (p, g) -> rule.apply(p, g, 1e-4f);
        return time(cfg, batch, seq, recompute, precision, sink, d, d::modelledNanos, 1);
    }

    /**
     * Times each part {@code reps} times after a first, untimed run, by {@code clock} (nanoseconds), and takes the
     * medians. The stages are built in {@code precision}, as a pipeline's are.
     */
    private static StageCosts time(ModelConfig cfg, int batch, int seq, boolean recompute, Precision precision, GradientSink sink,
                                   Device d, LongSupplier clock, int reps) {
        int n = batch * seq;
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = (i * 7919) % cfg.vocabSize();
        double[][] t = new double[6][reps + 1]; // embedding F, B; block F, B, W; head
        Initializer init = new Initializer(d, 1, precision.weights());
        Embedding e = Embedding.create(cfg, init);
        TransformerBlock b = Model.block(cfg, 0, init);
        b.setRecompute(recompute);
        b.setActivations(precision.activations());
        LmHead h = LmHead.create(cfg, init, cfg.tiedEmbeddings() ? e.tokenTable() : null);
        for (int r = 0; r <= reps; r++) {
            long t0 = clock.getAsLong();
            Tensor x = e.forward(ids, seq);
            long t1 = clock.getAsLong();
            e.backward(ids, seq, x, sink);
            long t2 = clock.getAsLong();
            TransformerBlock.Forward f = b.forward(x, batch, seq);
            long t3 = clock.getAsLong();
            TransformerBlock.Split split = b.backwardInput(f, f.output());
            split.dx().close();
            long t4 = clock.getAsLong();
            split.weights().run(sink);
            long t5 = clock.getAsLong();
            LmHead.Result res = h.lossAndBackward(f.output(), ids, 1f, sink);
            res.dx().close();
            long t6 = clock.getAsLong();
            f.output().close();
            x.close();
            long[] marks = {t0, t1, t2, t3, t4, t5, t6};
            for (int k = 0; k < 6; k++) t[k][r] = (marks[k + 1] - marks[k]) / 1e9;
        }
        b.close();
        for (var p : h.parameters(!cfg.tiedEmbeddings())) p.close();
        for (var p : e.parameters()) p.close();
        int stages = cfg.layers() + 2;
        double[] forward = new double[stages], backward = new double[stages], weights = new double[stages];
        forward[0] = median(t[0]);
        backward[0] = median(t[1]);
        Arrays.fill(forward, 1, stages - 1, median(t[2]));
        Arrays.fill(backward, 1, stages - 1, median(t[3]));
        Arrays.fill(weights, 1, stages - 1, median(t[4]));
        forward[stages - 1] = median(t[5]);
        return new StageCosts(forward, backward, weights);
    }

    private static double median(double[] v) {
        double[] s = Arrays.copyOfRange(v, 1, v.length);
        Arrays.sort(s);
        return s[s.length / 2];
    }
}
