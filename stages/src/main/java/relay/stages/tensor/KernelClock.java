package relay.stages.tensor;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.EnumMap;
import java.util.Map;

/**
 * Where a step's time goes, by kernel family: a view of a device that times every kernel called on it (the
 * wall time of the call, its threads included) and adds it to the kernel's family. Whatever a step spends
 * outside kernels (allocation, the Java between them) is the step's time less the families'. One thread
 * drives the device, as in the plain loop.
 */
public final class KernelClock {

    public enum Family {
        SGEMM("sgemm"), ATTENTION_SOFTMAX("attention_softmax"), NORMS("norms"), LOSS("loss"), UPDATE("update"),
        POINTWISE("pointwise");

        private final String key;

        Family(String key) {
            this.key = key;
        }

        public String key() {
            return key;
        }
    }

    /** The device's kernels by family; its other methods (allocation, transfers, accessors) are not timed. */
    private static final Map<String, Family> KERNELS = Map.ofEntries(
            Map.entry("gemm", Family.SGEMM), Map.entry("gemmBatch", Family.SGEMM),
            Map.entry("causalSoftmax", Family.ATTENTION_SOFTMAX), Map.entry("softmaxBackward", Family.ATTENTION_SOFTMAX),
            Map.entry("layerNorm", Family.NORMS), Map.entry("layerNormBackward", Family.NORMS),
            Map.entry("rmsNorm", Family.NORMS), Map.entry("rmsNormBackward", Family.NORMS),
            Map.entry("crossEntropy", Family.LOSS),
            Map.entry("adamw", Family.UPDATE), Map.entry("factoredSecondMoment", Family.UPDATE),
            Map.entry("factoredScale", Family.UPDATE), Map.entry("secondMomentScale", Family.UPDATE),
            Map.entry("axpy", Family.UPDATE), Map.entry("axpby", Family.UPDATE), Map.entry("scale", Family.UPDATE),
            Map.entry("clamp", Family.UPDATE), Map.entry("sumOfSquares", Family.UPDATE), Map.entry("roundStochastic", Family.UPDATE),
            Map.entry("gelu", Family.POINTWISE), Map.entry("geluBackward", Family.POINTWISE),
            Map.entry("swiglu", Family.POINTWISE), Map.entry("swigluBackward", Family.POINTWISE),
            Map.entry("rope", Family.POINTWISE), Map.entry("add", Family.POINTWISE), Map.entry("addRowVector", Family.POINTWISE),
            Map.entry("sumRows", Family.POINTWISE), Map.entry("copy", Family.POINTWISE), Map.entry("fill", Family.POINTWISE),
            Map.entry("embedding", Family.POINTWISE), Map.entry("embeddingBackward", Family.POINTWISE),
            Map.entry("addPositions", Family.POINTWISE), Map.entry("positionsBackward", Family.POINTWISE));

    private final long[] nanos = new long[Family.values().length];
    private final long[] calls = new long[Family.values().length];
    /** Matrix products' time by shape, where the profile points when sgemm runs below its peak. */
    private final Map<String, ShapeTime> byShape = new java.util.HashMap<>();

    /** The products of one shape ("m×n×k", transposes marked): how many, their FLOPs and their time. */
    public record ShapeTime(String shape, long products, double flops, long nanos) {
        public double gflops() {
            return flops / nanos;
        }

        /** These and {@code other}'s products of the same shape together. */
        ShapeTime plus(ShapeTime other) {
            return new ShapeTime(shape, products + other.products, flops + other.flops, nanos + other.nanos);
        }
    }

    /** The family a device method's time goes to, or null for one that is not a kernel. */
    static Family familyOf(String method) {
        return KERNELS.get(method);
    }

    /** A view of {@code device} that times its kernels; devices give it out through their own {@code timedBy}. */
    public Device view(Device device) {
        return (Device) Proxy.newProxyInstance(Device.class.getClassLoader(), new Class<?>[] {Device.class}, (proxy, method, args) -> {
            Family f = familyOf(method.getName());
            long t0 = f == null ? 0 : System.nanoTime();
            try {
                return method.invoke(device, args);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            } finally {
                if (f != null) {
                    long ns = System.nanoTime() - t0;
                    nanos[f.ordinal()] += ns;
                    calls[f.ordinal()]++;
                    if (f == Family.SGEMM) product(args, ns);
                }
            }
        });
    }

    /** Nanoseconds spent in each family since the last reset. */
    public Map<Family, Long> nanos() {
        Map<Family, Long> out = new EnumMap<>(Family.class);
        for (Family f : Family.values()) out.put(f, nanos[f.ordinal()]);
        return out;
    }

    /** Kernel calls of each family since the last reset. */
    public Map<Family, Long> calls() {
        Map<Family, Long> out = new EnumMap<>(Family.class);
        for (Family f : Family.values()) out.put(f, calls[f.ordinal()]);
        return out;
    }

    /** The time of a gemm or gemmBatch call, by its shape: (transA, transB, m, n, k, alpha, a, ...). */
    private void product(Object[] args, long ns) {
        int m = (Integer) args[2], n = (Integer) args[3], k = (Integer) args[4];
        long count = args[6] instanceof java.util.List<?> batch ? batch.size() : 1;
        String shape = m + "×" + n + "×" + k + (Boolean.TRUE.equals(args[0]) ? " Aᵀ" : "") + (Boolean.TRUE.equals(args[1]) ? " Bᵀ" : "");
        byShape.merge(shape, new ShapeTime(shape, count, 2.0 * m * n * k * count, ns), ShapeTime::plus);
    }

    /** Matrix products by shape since the last reset, the most time first. */
    public java.util.List<ShapeTime> products() {
        return byShape.values().stream().sorted(java.util.Comparator.comparingLong(ShapeTime::nanos).reversed()).toList();
    }

    public void reset() {
        java.util.Arrays.fill(nanos, 0);
        java.util.Arrays.fill(calls, 0);
        byShape.clear();
    }
}
