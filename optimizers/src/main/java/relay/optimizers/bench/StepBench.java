package relay.optimizers.bench;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import relay.optimizers.Method;
import relay.optimizers.OptimizerSettings;
import relay.stages.bench.BlockBench;
import relay.stages.bench.GemmShape;
import relay.stages.bench.SgemmBench;
import relay.stages.layers.Parameter;
import relay.stages.layers.TransformerBlock;
import relay.stages.memory.Category;
import relay.stages.memory.ProcessMemory;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.model.Precision;
import relay.stages.tensor.Device;
import relay.stages.tensor.KernelClock;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.train.ReferenceTrainer;
import relay.stages.train.SyntheticData;
import relay.stages.train.TrainingMethod;

/**
 * The whole model's training step on the plain loop — embedding, blocks, head with its loss, and the
 * update — timed and set against the sgemm peak measured in the same process, with the step's time split
 * by kernel family and the memory the ledger counted beside what the operating system saw.
 *
 * <p>Model FLOPs per token are 6N + 12·L·C·T (N the parameters that multiply activations: the blocks', the
 * final norm's and the head's matrix — the tied token table once — but no lookup table; the second term
 * attention's scores and mixing). The peak is that of BlockBench: the fastest of the step's own shapes,
 * timed again after every step in a window as long as a step's products, the best window kept. The shape timed
 * again is the fastest of those whose matrices take at most {@link #PROBE_BYTES}: the head's (GPT-2's logits
 * alone are 196 MiB) would add their memory to the process's peak resident, which the bench sets beside the ledger.
 */
public final class StepBench {
    private StepBench() {}

    static final long PROBE_BYTES = 64L << 20;

    /**
     * @param shares     fraction of the step's time per kernel family, plus "other": the time outside every kernel
     * @param peakBytes  the ledger's peak per category over the timed steps; {@code ledgerPeakTotal} their simultaneous peak
     * @param peakResidentBytes the process's VmHWM over the model's set-up and steps, the sgemm survey before them
     *                          left out (−1 where the system cannot say); beside it {@code arenaReservedBytes}, the native
     *                          memory the device took from the system (its tensors at their peak, and free memory kept for
     *                          reuse), and {@code heapCommittedBytes}, the JVM's heap, which the ledger does not count
     * @param products   the timed steps' matrix products by shape, the most time first: where sgemm falls short of its peak
     */
    public record Result(String model, int batch, int seq, int threads, String optimizer, boolean recompute, double modelFlops,
                         double sgemmPeakGflops, double[] stepSeconds, double medianSeconds, double achievedGflops, double mfu,
                         double tokensPerSecond, Map<String, Double> shares, Map<Category, Long> peakBytes, long ledgerPeakTotal,
                         long peakResidentBytes, long arenaReservedBytes, long heapCommittedBytes, List<KernelClock.ShapeTime> products) {
        /** The process's peak resident memory over the ledger's peak. */
        public double residentOverLedger() {
            return peakResidentBytes < 0 ? Double.NaN : (double) peakResidentBytes / ledgerPeakTotal;
        }
    }

    /** Parameters whose products run for every token (see the class comment). */
    static long multiplyingParameters(Model m) {
        long n = 0;
        for (TransformerBlock b : m.blocks()) n += b.parameters().stream().mapToLong(Parameter::size).sum();
        return n + m.head().parameters(true).stream().mapToLong(Parameter::size).sum();
    }

    /** The step's matrix shapes: every block's, and the head's three products over the vocabulary. */
    static List<GemmShape> shapes(ModelConfig cfg, int tokens) {
        List<GemmShape> s = new ArrayList<>(BlockBench.blockShapes(cfg, tokens));
        int c = cfg.hidden(), v = cfg.vocabSize();
        s.add(new GemmShape("head fwd", false, true, tokens, v, c));
        s.add(new GemmShape("head dx", false, false, tokens, c, v));
        s.add(new GemmShape("head dW", true, false, v, c, tokens));
        return s;
    }

    public static Result run(String modelName, ModelConfig cfg, int batch, int seq, int threads, String optimizer,
                             OptimizerSettings settings, boolean recompute, int iterations, Precision precision) {
        int tokens = batch * seq;
        KernelClock clock = new KernelClock();
        // The peak is measured on devices of their own, so their matrices stay out of the step's ledger; the
        // shapes' survey (the head's products are large) is over and freed before the process's peak is reset.
        List<SgemmBench.Measurement> measured;
        try (CpuDevice survey = new CpuDevice("sgemm-survey", threads)) {
            measured = new SgemmBench(survey, 3).measure(shapes(cfg, tokens));
        }
        GemmShape fastest = measured.stream().filter(m -> bytes(m.shape()) <= PROBE_BYTES)
                .max(Comparator.comparingDouble(SgemmBench.Measurement::gflops)).orElseThrow().shape();
        boolean peakReset = ProcessMemory.resetPeak();
        try (CpuDevice cpu = new CpuDevice("cpu0", threads); CpuDevice sgemm = new CpuDevice("sgemm", threads)) {
            Device device = cpu.timedBy(clock);
            SgemmBench probe = new SgemmBench(sgemm, 1);
            double[] seconds = new double[iterations], peaks = new double[iterations];
            double flops;
            Map<Category, Long> peakBytes;
            long peakTotal, reserved;
            Map<KernelClock.Family, Long> familyNanos;
            List<KernelClock.ShapeTime> products;
            try (Model model = Model.initialize(cfg, device, 1, precision)) {
                model.blocks().forEach(b -> b.setRecompute(recompute));
                flops = (6.0 * multiplyingParameters(model) + 12.0 * cfg.layers() * cfg.hidden() * seq) * tokens;
                int probeCalls = (int) Math.max(3, Math.ceil(flops / fastest.flops()));
                SyntheticData data = new SyntheticData(cfg.vocabSize(), batch, seq, 0.1, 7);
                try (TrainingMethod method = Method.named(optimizer).create(model, settings)) {
                    ReferenceTrainer trainer = new ReferenceTrainer(model, method);
                    trainer.step(List.of(data.next())); // the first step allocates the optimizer's state
                    cpu.memory().resetPeaks();
                    clock.reset();
                    for (int it = 0; it < iterations; it++) {
                        var batchData = List.of(data.next());
                        long t0 = System.nanoTime();
                        trainer.step(batchData);
                        seconds[it] = (System.nanoTime() - t0) / 1e9;
                        // The probe's device is not the clock's: the clock keeps counting the timed steps alone.
                        peaks[it] = probe.probe(fastest, probeCalls);
                    }
                    familyNanos = clock.nanos();
                    products = clock.products();
                    peakBytes = cpu.memory().peaks();
                    peakTotal = cpu.memory().peakTotal();
                    reserved = cpu.reservedBytes();
                }
            }
            double total = Arrays.stream(seconds).sum() * 1e9, kernels = 0;
            Map<String, Double> shares = new LinkedHashMap<>();
            for (KernelClock.Family f : KernelClock.Family.values()) {
                shares.put(f.key(), familyNanos.get(f) / total);
                kernels += familyNanos.get(f);
            }
            shares.put("other", 1 - kernels / total);
            double[] sorted = seconds.clone();
            Arrays.sort(sorted);
            double median = sorted[sorted.length / 2];
            double achieved = flops / median / 1e9, peak = Arrays.stream(peaks).max().orElse(SgemmBench.peak(measured));
            return new Result(modelName, batch, seq, threads, optimizer, recompute, flops, peak, seconds, median, achieved,
                    achieved / peak, tokens / median, shares, peakBytes, peakTotal, peakReset ? ProcessMemory.peakResidentBytes() : -1,
                    reserved, Runtime.getRuntime().totalMemory(), products);
        }
    }

    private static long bytes(GemmShape s) {
        return 4L * ((long) s.m() * s.k() + (long) s.k() * s.n() + (long) s.m() * s.n());
    }
}
