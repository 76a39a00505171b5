package relay.stages.model;

import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.tensor.DType;
import relay.stages.tensor.Device;
import relay.stages.tensor.Tensor;

/**
 * Deterministic parameter initialization: each parameter's values depend only on the seed and the
 * parameter's name, so a model initializes identically however its blocks are placed on devices.
 */
public final class Initializer {
    private final Device device;
    private final long seed;
    private final DType dtype;

    public Initializer(Device device, long seed) {
        this(device, seed, DType.F32);
    }

    /** Parameters stored as {@code dtype}: drawn in float32, then rounded to nearest. */
    public Initializer(Device device, long seed, DType dtype) {
        this.device = device;
        this.seed = seed;
        this.dtype = dtype;
    }

    public DType dtype() {
        return dtype;
    }

    public Device device() {
        return device;
    }

    /** Normal(0, std) weights, subject to weight decay. */
    public Parameter normal(String name, float std, int... shape) {
        Tensor t = device.allocate(Category.PARAMETERS, dtype, shape);
        if (!device.holdsValues()) return new Parameter(name, t, true);
        SplitMix rng = new SplitMix(seed ^ (0x9E3779B97F4A7C15L * name.hashCode()));
        t.fillFrom(() -> std * rng.nextGaussian());
        return new Parameter(name, t, true);
    }

    /** A constant vector (norm gains 1, biases 0), exempt from weight decay. */
    public Parameter constant(String name, float value, int size) {
        Tensor t = device.allocate(Category.PARAMETERS, dtype, size);
        if (value != 0f) device.fill(t, value);
        return new Parameter(name, t, false);
    }

    /** SplitMix64 with Box–Muller: small, fast, and the same on every JDK. */
    static final class SplitMix {
        private long state;
        private double spare = Double.NaN;

        SplitMix(long seed) {
            this.state = seed;
        }

        long nextLong() {
            long z = (state += 0x9E3779B97F4A7C15L);
            z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
            z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
            return z ^ (z >>> 31);
        }

        double nextDouble() {
            return (nextLong() >>> 11) * 0x1.0p-53;
        }

        double nextGaussian() {
            if (!Double.isNaN(spare)) {
                double s = spare;
                spare = Double.NaN;
                return s;
            }
            double u = 1.0 - nextDouble(), v = nextDouble();
            double r = Math.sqrt(-2 * Math.log(u));
            spare = r * Math.sin(2 * Math.PI * v);
            return r * Math.cos(2 * Math.PI * v);
        }
    }
}
