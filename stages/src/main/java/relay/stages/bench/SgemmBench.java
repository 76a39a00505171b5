package relay.stages.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import relay.stages.memory.Category;
import relay.stages.tensor.Device;
import relay.stages.tensor.Mat;
import relay.stages.tensor.Tensor;

/** Measures a device's sgemm throughput on given shapes: best of several timed repetitions. */
public final class SgemmBench {
    /** Each measurement runs at least this long, so timer resolution and warm-up do not matter. */
    private static final long MIN_NANOS = 200_000_000L;

    public record Measurement(GemmShape shape, double gflops, double seconds) {}

    private final Device device;
    private final int repeats;

    public SgemmBench(Device device, int repeats) {
        this.device = device;
        this.repeats = repeats;
    }

    /** Square shapes and the transposes a training step uses. */
    public static List<GemmShape> squareShapes() {
        List<GemmShape> s = new ArrayList<>();
        for (int n : new int[] {256, 512, 1024, 2048}) {
            s.add(new GemmShape("square", false, false, n, n, n));
            s.add(new GemmShape("square", false, true, n, n, n));
            s.add(new GemmShape("square", true, false, n, n, n));
        }
        return s;
    }

    public List<Measurement> measure(List<GemmShape> shapes) {
        List<Measurement> out = new ArrayList<>();
        for (GemmShape s : shapes) out.add(measure(s));
        return out;
    }

    /** The rate of {@code calls} back-to-back products of one shape, timed together: a quick probe of the machine's speed now. */
    public double probe(GemmShape s, int calls) {
        int aRows = s.transA() ? s.k() : s.m(), aCols = s.transA() ? s.m() : s.k();
        int bRows = s.transB() ? s.n() : s.k(), bCols = s.transB() ? s.k() : s.n();
        SplittableRandom rng = new SplittableRandom(2);
        try (Tensor a = random(rng, aRows, aCols); Tensor b = random(rng, bRows, bCols);
             Tensor c = device.allocate(Category.WORKSPACE, s.m(), s.n())) {
            device.gemm(s.transA(), s.transB(), s.m(), s.n(), s.k(), 1f, Mat.of(a), Mat.of(b), 0f, Mat.of(c));
            long t0 = System.nanoTime();
            for (int i = 0; i < calls; i++) {
                device.gemm(s.transA(), s.transB(), s.m(), s.n(), s.k(), 1f, Mat.of(a), Mat.of(b), 0f, Mat.of(c));
            }
            return s.flops() * calls / ((System.nanoTime() - t0) / 1e9) / 1e9;
        }
    }

    public Measurement measure(GemmShape s) {
        int aRows = s.transA() ? s.k() : s.m(), aCols = s.transA() ? s.m() : s.k();
        int bRows = s.transB() ? s.n() : s.k(), bCols = s.transB() ? s.k() : s.n();
        SplittableRandom rng = new SplittableRandom(1);
        try (Tensor a = random(rng, aRows, aCols); Tensor b = random(rng, bRows, bCols);
             Tensor c = device.allocate(Category.WORKSPACE, s.m(), s.n())) {
            Runnable op = () -> device.gemm(s.transA(), s.transB(), s.m(), s.n(), s.k(), 1f, Mat.of(a), Mat.of(b),
                    0f, Mat.of(c));
            op.run();
            long t0 = System.nanoTime();
            int calls = 0;
            while (System.nanoTime() - t0 < MIN_NANOS / 4) {
                op.run();
                calls++;
            }
            int perRepeat = Math.max(1, (int) (calls * MIN_NANOS / Math.max(1, System.nanoTime() - t0) / 4));
            double best = Double.MAX_VALUE;
            for (int r = 0; r < repeats; r++) {
                long start = System.nanoTime();
                for (int i = 0; i < perRepeat; i++) op.run();
                best = Math.min(best, (System.nanoTime() - start) / 1e9 / perRepeat);
            }
            return new Measurement(s, s.flops() / best / 1e9, best);
        }
    }

    private Tensor random(SplittableRandom rng, int rows, int cols) {
        return device.empty(Category.WORKSPACE, rows, cols).fillFrom(() -> rng.nextDouble(-1, 1));
    }

    public static double peak(List<Measurement> ms) {
        return ms.stream().mapToDouble(Measurement::gflops).max().orElse(0);
    }
}
