package relay.stages.tensor.cpu;

import java.nio.FloatBuffer;

/** Activation functions and their derivatives, element by element over [from, to). */
final class PointwiseKernels {
    private PointwiseKernels() {}

    private static final float GELU_K = (float) Math.sqrt(2.0 / Math.PI);
    private static final float GELU_C = 0.044715f;

    /** tanh through one exp, which the JIT turns into an intrinsic; Math.tanh is far slower. */
    private static float tanh(float u) {
        return 1f - 2f / ((float) Math.exp(2f * u) + 1f);
    }

    static void gelu(FloatBuffer x, int xo, FloatBuffer y, int yo, int from, int to) {
        for (int i = from; i < to; i++) {
            float v = x.get(xo + i);
            float t = tanh(GELU_K * (v + GELU_C * v * v * v));
            y.put(yo + i, 0.5f * v * (1f + t));
        }
    }

    static void geluBackward(FloatBuffer x, int xo, FloatBuffer dy, int dyo, FloatBuffer dx, int dxo,
                             int from, int to) {
        for (int i = from; i < to; i++) {
            float v = x.get(xo + i);
            float t = tanh(GELU_K * (v + GELU_C * v * v * v));
            float du = GELU_K * (1f + 3f * GELU_C * v * v);
            float d = 0.5f * (1f + t) + 0.5f * v * (1f - t * t) * du;
            dx.put(dxo + i, dy.get(dyo + i) * d);
        }
    }

    static void swiglu(FloatBuffer gate, int go, FloatBuffer up, int uo, FloatBuffer out, int oo,
                       int from, int to) {
        for (int i = from; i < to; i++) {
            float g = gate.get(go + i);
            float s = 1f / (1f + (float) Math.exp(-g));
            out.put(oo + i, g * s * up.get(uo + i));
        }
    }

    /** d silu(g)/dg = s·(1 + g·(1 − s)) with s the sigmoid. */
    static void swigluBackward(FloatBuffer gate, int go, FloatBuffer up, int uo, FloatBuffer dOut, int doo,
                               FloatBuffer dGate, int dgo, FloatBuffer dUp, int duo, int from, int to) {
        for (int i = from; i < to; i++) {
            float g = gate.get(go + i);
            float s = 1f / (1f + (float) Math.exp(-g));
            float d = dOut.get(doo + i);
            dGate.put(dgo + i, d * up.get(uo + i) * s * (1f + g * (1f - s)));
            dUp.put(duo + i, d * g * s);
        }
    }
}
