package relay.stages.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import relay.stages.layers.GradientSink;
import relay.stages.layers.Parameter;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.train.Batch;

/**
 * Two examples packed into one row with their position ids are two examples, not one text: every target's loss is
 * the loss it has with its example alone in a row of its own, and the gradient of the row's mean loss is that of
 * the same targets' mean over the two rows, unpacked, to float32 rounding.
 */
class PackedExamplesTest {
    static final int SEQ = 12, PAD = 0;
    static CpuDevice device;

    @BeforeAll
    static void open() {
        device = new CpuDevice("cpu-packed", 2);
    }

    @AfterAll
    static void close() {
        device.close();
    }

    static final ModelConfig.Options LLAMA = ModelConfig.Options.plain(Family.LLAMA);

    static Stream<Arguments> models() {
        return Stream.of(
                Arguments.of("llama", new ModelConfig(Family.LLAMA, 19, 16, 2, 4, 2, 8, 24, 16, 1e-5f, 10000.0, false)),
                // A window of 3 cuts both examples (5 and 6 tokens): the window and the example's start bound a query together.
                Arguments.of("mistral-window", new ModelConfig(Family.LLAMA, 19, 16, 2, 4, 2, 8, 24, 16, 1e-5f, 10000.0, false,
                        LLAMA.withModelType("mistral").withWindow(3, 0))),
                Arguments.of("gpt2", new ModelConfig(Family.GPT2, 19, 16, 2, 2, 2, 8, 40, 16, 1e-5f, 0, true)));
    }

    /** Example A (5 tokens) then B (6) in one row, padded: A's last input has no target (B's first token is nobody's). */
    static final int[] A = {3, 7, 11, 2, 5}, B = {9, 4, 4, 13, 1, 17};

    static Batch packed() {
        int[] in = new int[SEQ], tgt = new int[SEQ], pos = new int[SEQ];
        Arrays.fill(in, PAD);
        Arrays.fill(tgt, Batch.IGNORED);
        place(A, 0, in, tgt, pos);
        place(B, A.length, in, tgt, pos);
        // The padding is an example of its own, counting from 0.
        for (int i = A.length + B.length; i < SEQ; i++) pos[i] = i - A.length - B.length;
        return new Batch(in, tgt, 1, SEQ, pos);
    }

    /** A and B each alone in a row of its own, padded, without position ids. */
    static Batch unpacked() {
        int[] in = new int[2 * SEQ], tgt = new int[2 * SEQ];
        Arrays.fill(in, PAD);
        Arrays.fill(tgt, Batch.IGNORED);
        place(A, 0, in, tgt, new int[2 * SEQ]);
        place(B, SEQ, in, tgt, new int[2 * SEQ]);
        return new Batch(in, tgt, 2, SEQ);
    }

    private static void place(int[] example, int at, int[] in, int[] tgt, int[] pos) {
        for (int t = 0; t < example.length; t++) {
            in[at + t] = example[t];
            pos[at + t] = t;
            if (t + 1 < example.length) tgt[at + t] = example[t + 1];
        }
    }

    /** The loss of target i alone: every other target ignored. */
    static double tokenLoss(Model m, Batch b, int i) {
        int[] one = new int[b.tokens()];
        Arrays.fill(one, Batch.IGNORED);
        one[i] = b.targets()[i];
        return m.loss(b.inputs(), one, b.positions(), b.batch(), b.seq());
    }

    static Map<String, float[]> gradients(Model m, Batch b) {
        Map<String, float[]> g = new HashMap<>();
        GradientSink sink = (p, t) -> g.merge(p.name(), t.toArray(), (x, y) -> {
            float[] s = x.clone();
            for (int i = 0; i < s.length; i++) s[i] += y[i];
            return s;
        });
        m.forwardBackward(b.inputs(), b.targets(), b.positions(), b.batch(), b.seq(), 1f, Model.Sinks.all(sink));
        return g;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void aPackedRowIsItsExamplesAlone(String name, ModelConfig cfg) {
        try (Model m = Model.initialize(cfg, device, 5)) {
            // Weights of 0.3 rather than 0.02, so that what a token attends to shows in its loss.
            SplittableRandom rng = new SplittableRandom(11);
            for (Parameter p : m.parameters()) {
                float[] v = new float[(int) p.size()];
                for (int i = 0; i < v.length; i++) v[i] = (float) (rng.nextDouble(-1, 1) * 0.3);
                p.value().copyFrom(v);
            }
            Batch packed = packed(), alone = unpacked();
            int compared = 0;
            for (int i = 0; i < SEQ; i++) {
                if (packed.targets()[i] == Batch.IGNORED) continue;
                // Position i of the packed row is A's token i, or B's token i − |A| (row 1 of the unpacked batch).
                int j = i < A.length ? i : SEQ + i - A.length;
                assertEquals(alone.targets()[j], packed.targets()[i]);
                double want = tokenLoss(m, alone, j), got = tokenLoss(m, packed, i);
                assertEquals(want, got, 2e-6 * Math.max(1, Math.abs(want)), name + ": the loss of target " + i);
                compared++;
            }
            assertEquals(A.length - 1 + B.length - 1, compared);
            assertEquals(LmHead.counted(alone.targets()), LmHead.counted(packed.targets()));
            Map<String, float[]> want = gradients(m, alone), got = gradients(m, packed);
            assertEquals(want.keySet(), got.keySet());
            for (String p : want.keySet()) {
                float[] w = want.get(p), g = got.get(p);
                double scale = 0;
                for (float x : w) scale = Math.max(scale, Math.abs(x));
                assertTrue(scale > 0, p + " has a gradient");
                for (int i = 0; i < w.length; i++) {
                    assertEquals(w[i], g[i], 2e-5 * scale, name + ": gradient of " + p + " at " + i);
                }
            }
        }
    }
}
