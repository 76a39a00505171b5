package relay.stages.check;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The checker itself must reject a wrong gradient, or passing checks would mean nothing. */
class GradientCheckTest {

    private static Map<String, double[]> vars() {
        Map<String, double[]> v = new LinkedHashMap<>();
        v.put("x", GradientCheck.random(new SplittableRandom(1), 10, 1));
        return v;
    }

    /** out = x², whose true backward is 2x·dOut. */
    private static GradientCheck.Result square(double factor) {
        return GradientCheck.check("square", vars(), v -> {
            double[] x = v.get("x"), y = new double[x.length];
            for (int i = 0; i < x.length; i++) y[i] = x[i] * x[i];
            return y;
        }, (v, dOut) -> {
            double[] x = v.get("x"), y = new double[x.length], dx = new double[x.length];
            for (int i = 0; i < x.length; i++) {
                y[i] = (float) (x[i] * x[i]);
                dx[i] = (float) (factor * x[i] * dOut[i]);
            }
            return new GradientCheck.Outcome(y, Map.of("x", dx));
        }, 7);
    }

    @Test
    void acceptsCorrectFloat32Gradient() {
        assertTrue(square(2).pass());
    }

    @Test
    void rejectsGradientOffByFivePercent() {
        assertFalse(square(2.1).pass());
    }
}
