package relay.stages.bench;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import relay.stages.layers.GradientSink;
import relay.stages.layers.TransformerBlock;
import relay.stages.memory.Category;
import relay.stages.model.Family;
import relay.stages.model.Initializer;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.Device;
import relay.stages.tensor.Tensor;

/**
 * One transformer block's forward and backward (weight gradients included, then dropped), timed and set
 * against the sgemm peak measured in the same process on the block's own matrix shapes.
 */
public final class BlockBench {

    /**
     * The peak is measured two ways. Up front, every block shape is timed in five short windows and the best
     * window kept ({@code upFrontPeakGflops}): on this machine that maximum of sixty noisy windows lands
     * far above the rate sgemm sustains (the same product gives 300 in one window and 220 in the next). So
     * after every timed step the fastest shape is timed again in a window as long as a step's products, and
     * the best of those windows is {@code sgemmPeakGflops}; {@code mfu} is the median step's achieved rate
     * over it. {@code upFrontMfu} is the same rate over the up-front maximum.
     */
    public record Result(String model, int batch, int seq, int threads, double sgemmPeakGflops,
                         List<SgemmBench.Measurement> shapes, double modelFlops, double[] stepSeconds,
                         double bestSeconds, double medianSeconds, double achievedGflops, double mfu,
                         double upFrontPeakGflops, double upFrontMfu, double[] stepPeakGflops, Map<Category, Long> peakBytes) {}

    /** The products of one block's forward and backward: per linear y = x·Wᵀ, dx = dy·W, dW = dyᵀ·x. */
    public static List<GemmShape> blockShapes(ModelConfig cfg, int tokens) {
        int c = cfg.hidden(), q = cfg.heads() * cfg.headDim(), kv = cfg.kvHeads() * cfg.headDim(), i = cfg.intermediate();
        Map<String, int[]> linears = new LinkedHashMap<>();
        if (cfg.family() == Family.GPT2) {
            linears.put("c_attn", new int[] {c, 3 * c});
            linears.put("attn.c_proj", new int[] {c, c});
            linears.put("c_fc", new int[] {c, i});
            linears.put("mlp.c_proj", new int[] {i, c});
        } else {
            linears.put("q_proj", new int[] {c, q});
            linears.put("k_proj", new int[] {c, kv});
            linears.put("o_proj", new int[] {q, c});
            linears.put("gate_proj", new int[] {c, i});
            linears.put("down_proj", new int[] {i, c});
        }
        List<GemmShape> shapes = new ArrayList<>();
        linears.forEach((name, io) -> {
            shapes.add(new GemmShape(name + " fwd", false, true, tokens, io[1], io[0]));
            shapes.add(new GemmShape(name + " dx", false, false, tokens, io[0], io[1]));
            shapes.add(new GemmShape(name + " dW", true, false, io[1], io[0], tokens));
        });
        return shapes;
    }

    /** Model FLOPs of one block's forward + backward: 3× the forward's 2·tokens·weights plus attention. */
    public static double modelFlops(ModelConfig cfg, int batch, int seq) {
        long tokens = (long) batch * seq;
        long c = cfg.hidden(), q = (long) cfg.heads() * cfg.headDim(), kv = (long) cfg.kvHeads() * cfg.headDim();
        long i = cfg.intermediate();
        long matmulWeights = cfg.family() == Family.GPT2 ? c * 3 * c + c * c + 2 * c * i : c * q + 2 * c * kv + q * c + 3 * c * i;
        double forward = 2.0 * tokens * matmulWeights + 4.0 * batch * cfg.heads() * (double) seq * seq * cfg.headDim();
        return 3 * forward;
    }

    public static Result run(Device device, String modelName, ModelConfig cfg, int batch, int seq, int iterations) {
        int tokens = batch * seq;
        List<SgemmBench.Measurement> shapes = new SgemmBench(device, 5).measure(blockShapes(cfg, tokens));
        double peak = SgemmBench.peak(shapes);
        double flops = modelFlops(cfg, batch, seq);
        GradientSink drop = (p, g) -> { };
        SplittableRandom rng = new SplittableRandom(7);
        float[] xv = new float[tokens * cfg.hidden()];
        for (int k = 0; k < xv.length; k++) xv[k] = (float) rng.nextDouble(-1, 1);
        double[] seconds = new double[iterations], peaks = new double[iterations];
        SgemmBench probe = new SgemmBench(device, 1);
        GemmShape fastest = shapes.stream().max(java.util.Comparator.comparingDouble(SgemmBench.Measurement::gflops))
                .orElseThrow().shape();
        // A window as long as the products of one step take, at the up-front rate.
        int probeCalls = (int) Math.max(3, Math.ceil(flops / fastest.flops()));
        try (TransformerBlock block = Model.block(cfg, 0, new Initializer(device, 1));
             Tensor x = device.allocate(Category.ACTIVATIONS, tokens, cfg.hidden()).copyFrom(xv);
             Tensor dOut = device.allocate(Category.ACTIVATIONS, tokens, cfg.hidden()).copyFrom(xv)) {
            for (int w = 0; w < 2; w++) step(block, x, dOut, batch, seq, drop);
            device.memory().resetPeaks();
            for (int it = 0; it < iterations; it++) {
                long t0 = System.nanoTime();
                step(block, x, dOut, batch, seq, drop);
                seconds[it] = (System.nanoTime() - t0) / 1e9;
                peaks[it] = probe.probe(fastest, probeCalls);
            }
        }
        double[] sorted = seconds.clone();
        Arrays.sort(sorted);
        double best = sorted[0], median = sorted[sorted.length / 2];
        double achieved = flops / median / 1e9;
        double sustained = Arrays.stream(peaks).max().orElse(peak);
        return new Result(modelName, batch, seq, device.threads(), sustained, shapes, flops, seconds, best, median,
                achieved, achieved / sustained, peak, achieved / peak, peaks, device.memory().peaks());
    }



    private static void step(TransformerBlock block, Tensor x, Tensor dOut, int batch, int seq, GradientSink sink) {
        TransformerBlock.Forward f = block.forward(x, batch, seq);
        f.output().close();
        block.backward(f, dOut, sink).close();
    }
}
