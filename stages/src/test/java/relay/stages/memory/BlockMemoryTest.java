package relay.stages.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import relay.stages.layers.GradientSink;
import relay.stages.layers.Parameter;
import relay.stages.layers.TransformerBlock;
import relay.stages.model.Family;
import relay.stages.model.Initializer;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.Tensor;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.train.GradientAccumulator;

/**
 * A GPT-2 block's forward and backward, with every category's peak computed by hand from the shapes
 * (batch B, sequence T, width C, heads H, MLP width I = 4C; four bytes a float).
 */
class BlockMemoryTest {
    static final int B = 2, T = 12, C = 32, H = 4, I = 4 * C, N = B * T;
    static final ModelConfig CFG = new ModelConfig(Family.GPT2, 50, C, 1, H, H, C / H, I, 16, 1e-5f, 0, true);

    CpuDevice device;
    TransformerBlock block;

    @BeforeEach
    void open() {
        device = new CpuDevice("cpu-mem", 1);
        block = Model.block(CFG, 0, new Initializer(device, 1));
    }

    @AfterEach
    void close() {
        block.close();
        assertEquals(0, device.memory().currentTotal(), "everything freed");
        device.close();
    }

    /** Floats the block keeps from forward to backward. */
    static long savedFloats() {
        long ln1 = (long) N * C + 2L * N;   // ln_1 output, mean, 1/std
        long qkv = 3L * N * C;
        long probs = (long) B * H * T * T;
        long att = (long) N * C;             // attention output, input of c_proj
        long h = (long) N * C;               // residual after attention
        long ln2 = (long) N * C + 2L * N;
        long fc = (long) N * I;              // c_fc output (GELU input)
        long act = (long) N * I;             // GELU output
        return ln1 + qkv + probs + att + h + ln2 + fc + act;
    }

    static long parameterFloats() {
        return 4L * C + 3L * C * C + 3L * C + C * C + C + (long) I * C + I + (long) C * I + C;
    }

    /** What a frozen block keeps: only what the input gradient needs (no inputs of linears). */
    static long frozenSavedFloats() {
        return 2L * N + 3L * N * C + (long) B * H * T * T + (long) N * C + 2L * N + (long) N * I;
    }

    private long run(GradientSink sink) {
        return run(sink, block.recompute() ? 0 : savedFloats());
    }

    private long run(GradientSink sink, long expectedSaved) {
        Tensor x = device.allocate(Category.ACTIVATIONS, N, C);
        TransformerBlock.Forward f = block.forward(x, B, T);
        assertEquals(4 * (2L * N * C + expectedSaved), device.memory().current(Category.ACTIVATIONS),
                "after forward: input, output and saved activations");
        f.output().close();
        Tensor dOut = device.allocate(Category.ACTIVATIONS, N, C);
        block.backward(f, dOut, sink).close();
        dOut.close();
        x.close();
        return device.memory().peak(Category.ACTIVATIONS);
    }

    @Test
    void forwardAndBackwardPeaksMatchTheShapes() {
        assertEquals(4 * parameterFloats(), device.memory().current(Category.PARAMETERS));
        long largest = block.parameters().stream().mapToLong(Parameter::size).max().orElseThrow();
        assertEquals((long) I * C, largest);

        long peakActivations = run((p, g) -> { });
        // Backward holds x, the saved activations and dOut, then at most six N×C gradients at once:
        // dH, dN1, dQkv (3), dAtt during attention backward — as much as dH, dN2 and dAct (I = 4C) earlier.
        long backwardPeak = 2L * N * C + savedFloats() + 6L * N * C;
        long forwardPeak = 2L * N * C + savedFloats();
        assertEquals(4 * Math.max(forwardPeak, backwardPeak), peakActivations);
        assertEquals(4 * largest, device.memory().peak(Category.GRADIENTS), "a consuming sink holds one gradient at a time");
        assertEquals(4L * H * T * T, device.memory().peak(Category.WORKSPACE), "one batch element's score gradients");
    }

    @Test
    void frozenBlockHoldsNoGradientAndFewerActivations() {
        block.setTrainable(false);
        run(null, frozenSavedFloats());
        assertEquals(0, device.memory().peak(Category.GRADIENTS));
    }

    /** In an RSO subspace of rank r each linear keeps x·Pᵀ (N×r) instead of its input. */
    @Test
    void subspaceBlockKeepsProjectedInputsOnly() {
        int r = 4;
        List<relay.stages.layers.LowRank> terms = new java.util.ArrayList<>();
        for (relay.stages.layers.Linear l : block.linears()) terms.add(relay.stages.model.Adapters.subspace(l, r, 9));
        try {
            run((p, g) -> { }, frozenSavedFloats() + 4L * N * r);
            // Only the B matrices (largest: c_fc's, I×r) and the norms get gradients; base weights are frozen.
            assertEquals(4L * I * r, device.memory().peak(Category.GRADIENTS));
        } finally {
            for (var t : terms) t.close();
        }
    }

    @Test
    void accumulatingSinkHoldsEveryGradient() {
        try (GradientAccumulator acc = new GradientAccumulator()) {
            run(acc);
            assertEquals(4 * parameterFloats(), device.memory().current(Category.GRADIENTS));
            // Layers add straight into the sums: never more than one gradient per parameter.
            assertEquals(4 * parameterFloats(), device.memory().peak(Category.GRADIENTS));
        }
    }

    @Test
    void recomputeKeepsOnlyTheInput() {
        block.setRecompute(true);
        long peak = run((p, g) -> { });
        // Forward still builds the activations once, and backward rebuilds them next to dOut.
        assertEquals(4 * (2L * N * C + savedFloats() + 6L * N * C), peak);
        List<Parameter> ps = block.parameters();
        assertEquals(12, ps.size());
    }
}
