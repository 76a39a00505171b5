package relay.stages.check;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Function;

/**
 * Checks a float32 implementation against float64: its forward against a float64 reference forward,
 * and its backward against central finite differences of that reference, taken in float64.
 *
 * <p>The scalar probed is L = Σ out·R for a fixed random R, so one backward with dOut = R gives ∂L for
 * every variable. Errors are measured relative to the largest magnitude of the quantity compared
 * (max|a − b| / max|b|), which does not blow up where single entries happen to be near zero.
 *
 * <p>Threshold: the float32 side rounds each of its O(10) chained ops at ~6e-8 relative and sums over
 * at most a few hundred terms, so honest errors stay near 1e-6; finite differences in float64 with
 * h = 1e-4 add ~1e-8 (truncation, h²) and ~1e-12 (rounding). A wrong backward — a missing term, a
 * transposed index, a wrong sign — gives errors of order 1. 1e-4 separates the two by two orders or more each way.
 */
public final class GradientCheck {
    public static final double THRESHOLD = 1e-4;
    private static final double H = 1e-4;
    private static final int PROBES_PER_VARIABLE = 24;

    private GradientCheck() {}

    /** Output of the float32 side: its forward values and ∂L/∂variable for every variable. */
    public record Outcome(double[] output, Map<String, double[]> gradients) {}

    /** Runs the float32 forward and backward with the given variable values and output gradient. */
    public interface Float32Side {
        Outcome run(Map<String, double[]> variables, double[] dOut);
    }

    public record Result(String name, double maxRelErr, boolean pass, String worst) {}

    /** Values drawn in float32 precision, so both sides see exactly the same numbers. */
    public static double[] random(SplittableRandom rng, int n, double scale) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = (float) ((rng.nextDouble() * 2 - 1) * scale);
        return v;
    }

    public static Result check(String name, Map<String, double[]> variables,
                               Function<Map<String, double[]>, double[]> reference, Float32Side side, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        double[] expected = reference.apply(variables);
        double[] r = random(rng, expected.length, 1.0);
        Outcome got = side.run(variables, r);

        double worstErr = relativeError(got.output(), expected, null);
        String worst = "forward";
        for (Map.Entry<String, double[]> v : variables.entrySet()) {
            String var = v.getKey();
            double[] g32 = got.gradients().get(var);
            if (g32 == null) throw new IllegalStateException(name + ": no gradient for " + var);
            int[] idx = sample(rng, v.getValue().length);
            double[] fd = Reference64.centralDifference(x -> {
                Map<String, double[]> probe = new LinkedHashMap<>(variables);
                probe.put(var, x);
                return Reference64.dot(reference.apply(probe), r);
            }, v.getValue(), idx, H);
            double err = relativeError(g32, fd, idx);
            if (err > worstErr || Double.isNaN(err)) {
                worstErr = err;
                worst = "d/d" + var;
            }
        }
        return new Result(name, worstErr, worstErr <= THRESHOLD, worst);
    }

    private static int[] sample(SplittableRandom rng, int n) {
        if (n <= PROBES_PER_VARIABLE) {
            int[] all = new int[n];
            for (int i = 0; i < n; i++) all[i] = i;
            return all;
        }
        int[] idx = new int[PROBES_PER_VARIABLE];
        for (int i = 0; i < idx.length; i++) idx[i] = rng.nextInt(n);
        return idx;
    }

    /** max|got − want| / max|want| over want's entries (got indexed through idx when given). */
    static double relativeError(double[] got, double[] want, int[] idx) {
        if (idx == null && got.length != want.length) return Double.POSITIVE_INFINITY;
        double maxDiff = 0, maxWant = 0;
        for (int j = 0; j < want.length; j++) {
            double g = got[idx == null ? j : idx[j]];
            double d = Math.abs(g - want[j]);
            if (Double.isNaN(d)) return Double.NaN;
            maxDiff = Math.max(maxDiff, d);
            maxWant = Math.max(maxWant, Math.abs(want[j]));
        }
        return maxDiff / Math.max(maxWant, 1e-6);
    }
}
