package relay.optimizers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import relay.optimizers.OptimizerSettings.Adam;
import relay.optimizers.OptimizerSettings.Lisa;
import relay.optimizers.OptimizerSettings.LowRank;
import relay.stages.layers.Linear;
import relay.stages.layers.Parameter;
import relay.stages.layers.TransformerBlock;
import relay.stages.memory.Category;
import relay.stages.model.Family;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.train.Batch;
import relay.stages.train.ReferenceTrainer;
import relay.stages.train.SyntheticData;
import relay.stages.train.TrainingMethod;

class TrainingMethodsTest {
    static CpuDevice device;

    @BeforeAll
    static void open() {
        device = new CpuDevice("cpu-methods", 2);
    }

    @AfterAll
    static void close() {
        device.close();
    }

    static final ModelConfig LLAMA = new ModelConfig(Family.LLAMA, 48, 32, 3, 4, 2, 8, 64, 32, 1e-5f, 10000.0, false);
    static final ModelConfig GPT2 = new ModelConfig(Family.GPT2, 48, 32, 3, 4, 4, 8, 96, 32, 1e-5f, 0, true);

    static List<Batch> batches(ModelConfig cfg, int n, long seed) {
        SyntheticData data = new SyntheticData(cfg.vocabSize(), 2, 12, 0.2, seed);
        return java.util.stream.IntStream.range(0, n).mapToObj(i -> data.next()).toList();
    }

    /** Trains a fresh model with the method for the given steps (one microbatch each); returns the weights. */
    static float[][] train(ModelConfig cfg, String optimizer, OptimizerSettings s, int steps) {
        try (Model model = Model.initialize(cfg, device, 3); TrainingMethod m = Method.named(optimizer).create(model, s)) {
            ReferenceTrainer t = new ReferenceTrainer(model, m);
            for (Batch b : batches(cfg, steps, 5)) t.step(List.of(b));
            return model.parameters().stream().map(p -> p.value().toArray()).toArray(float[][]::new);
        }
    }

    static void assertSameWeights(float[][] a, float[][] b, float tol) {
        assertEquals(a.length, b.length);
        for (int i = 0; i < a.length; i++) assertArrayEquals(a[i], b[i], tol, "parameter " + i);
    }

    @Test
    void lomoWithGlobalNormClippingEqualsClassicSgdWithTheSameClipping() {
        OptimizerSettings s = OptimizerSettings.defaults(0.5f).withClipping(new Clipping(0f, 0.3f));
        assertSameWeights(train(LLAMA, "sgd", s, 3), train(LLAMA, "lomo", s, 3), 2e-6f);
        assertSameWeights(train(GPT2, "sgd", s, 3), train(GPT2, "lomo", s, 3), 2e-6f);
    }

    @Test
    void clippingChangesTheResult() {
        OptimizerSettings s = OptimizerSettings.defaults(0.5f);
        float[][] plain = train(LLAMA, "lomo", s, 2), clipped = train(LLAMA, "lomo", s.withClipping(new Clipping(0f, 0.1f)), 2);
        assertTrue(!Arrays.equals(plain[1], clipped[1]), "a 0.1 norm clip must bind on these gradients");
    }

    /**
     * Fused AdamW equals classic AdamW, also with GPT-2's tied matrix (whose two parts are summed before its
     * one update). The sums are formed in another order (head part + embedding part), so they agree to
     * rounding, not bit for bit; and Adam's g/√v would turn rounding noise in a gradient that is exactly
     * zero in exact arithmetic (GPT-2's key bias: softmax ignores it) into a step of ±lr. A larger ε keeps
     * the update Lipschitz in g, so float32 rounding stays float32 rounding in the weights.
     */
    @Test
    void fusedAdamwEqualsClassicAdamw() {
        OptimizerSettings d = OptimizerSettings.defaults(0.01f);
        OptimizerSettings s = new OptimizerSettings(d.lr(), 0.01f, new Adam(0.9f, 0.999f, 1e-3f), d.clipping(),
                d.lrSchedule(), d.lisa(), d.lowRank(), d.seed());
        assertSameWeights(train(LLAMA, "adamw", s, 3), train(LLAMA, "adamw-fused", s, 3), 2e-6f);
        assertSameWeights(train(GPT2, "adamw", s, 3), train(GPT2, "adamw-fused", s, 3), 2e-6f);
    }

    /**
     * Under LISA the optimizer state is exactly the rule's for the embedding, head and γ drawn blocks: Adam's two
     * moments (lisa), AdaLomo's row and column factors of a matrix and a full second moment of a vector
     * (lisa-adalomo), nothing (lisa-lomo); and the drawn blocks are the ones that train.
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"lisa", "lisa-adalomo", "lisa-lomo"})
    void lisaHoldsStateForEmbeddingHeadAndSampledBlocksOnly(String name) {
        OptimizerSettings s = OptimizerSettings.defaults(0.01f).withLisa(new Lisa(1, 2));
        java.util.function.ToLongFunction<List<Parameter>> state = switch (name) {
            case "lisa" -> ps -> 2 * size(ps);
            case "lisa-adalomo" -> ps -> ps.stream().mapToLong(p -> p.value().shape().length == 2
                    ? p.value().rows() + p.value().cols() : p.size()).sum();
            default -> ps -> 0;
        };
        try (Model model = Model.initialize(LLAMA, device, 3); TrainingMethod m = Method.named(name).create(model, s)) {
            ReferenceTrainer t = new ReferenceTrainer(model, m);
            LisaPolicy policy = new LisaPolicy(LLAMA.layers(), 1, 2, s.seed());
            long before = device.memory().current(Category.OPTIMIZER_STATE);
            for (Batch b : batches(LLAMA, 5, 9)) {
                int step = t.stepsDone();
                t.step(List.of(b));
                long expected = state.applyAsLong(model.embedding().parameters()) + state.applyAsLong(model.head().parameters(true));
                for (int blk : policy.activeBlocks(step)) expected += state.applyAsLong(model.blocks().get(blk).parameters());
                assertEquals(4 * expected, device.memory().current(Category.OPTIMIZER_STATE) - before, "step " + step);
                for (int i = 0; i < LLAMA.layers(); i++) {
                    assertEquals(policy.isActive(i, step), model.blocks().get(i).trainable(), "block " + i + " at step " + step);
                }
            }
        }
    }

    /**
     * A rule with state sees GPT-2's tied matrix's gradient whole and once, and holds one copy of it: the head's
     * product lands in the sum the embedding then adds its rows to. The gradient peak is that one matrix and at
     * most the largest other gradient beside it (two copies before).
     */
    @Test
    void aTiedMatrixHoldsOneGradient() {
        OptimizerSettings s = OptimizerSettings.defaults(0.01f);
        // A vocabulary large enough that the tied matrix is by far the largest parameter, as in GPT-2.
        ModelConfig wide = new ModelConfig(Family.GPT2, 512, 32, 2, 4, 4, 8, 96, 32, 1e-5f, 0, true);
        try (Model model = Model.initialize(wide, device, 3); TrainingMethod m = Method.named("adalomo").create(model, s)) {
            Parameter tied = model.head().weight();
            long tiedBytes = 4L * tied.size();
            long largestOther = 4L * model.parameters().stream().filter(p -> p != tied).mapToLong(Parameter::size).max().orElseThrow();
            device.memory().resetPeaks();
            new ReferenceTrainer(model, m).step(List.of(batches(wide, 1, 5).get(0)));
            long peak = device.memory().peak(Category.GRADIENTS);
            assertTrue(peak >= tiedBytes && peak <= tiedBytes + largestOther, "gradient peak " + peak + " for a tied matrix of " + tiedBytes);
            assertEquals(0, device.memory().current(Category.GRADIENTS));
        }
    }

    static long size(List<Parameter> ps) {
        return ps.stream().mapToLong(Parameter::size).sum();
    }

    /** RSO's merge and redraw moves B into W and draws a new P: the loss is the same just before and after. */
    @Test
    void rsoRedrawLeavesTheModelFunctionUnchanged() {
        OptimizerSettings s = OptimizerSettings.defaults(0.01f);
        Batch probe = batches(LLAMA, 1, 77).get(0);
        try (Model model = Model.initialize(LLAMA, device, 3); TrainingMethod m = Method.named("rso").create(model, s)) {
            ReferenceTrainer t = new ReferenceTrainer(model, m);
            for (Batch b : batches(LLAMA, 3, 9)) t.step(List.of(b));
            double before = loss(model, probe);
            Linear l = model.blocks().get(0).linears().get(0);
            float[] p0 = l.lowRank().a().value().toArray(), w0 = l.weight().value().toArray();
            m.beginStep(s.lowRank().rsoPeriod());
            double after = loss(model, probe);
            assertEquals(before, after, 1e-5 * before);
            assertTrue(!Arrays.equals(p0, l.lowRank().a().value().toArray()), "a new projection");
            assertTrue(!Arrays.equals(w0, l.weight().value().toArray()), "B went into W");
            for (float v : l.lowRank().b().value().toArray()) assertEquals(0f, v);
        }
    }

    /**
     * In the middle of a LoRA or RSO run the model's values (what a checkpoint or an evaluation reads) are
     * a plain model with the terms folded in: it computes the same loss, and the base weights are untouched.
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"lora", "rso"})
    void midRunValuesAreThePlainModelTheTermsMakeUp(String name) {
        OptimizerSettings s = OptimizerSettings.defaults(0.05f).withLowRank(LowRank.DEFAULT.withRank(4));
        Batch probe = batches(LLAMA, 1, 77).get(0);
        try (Model model = Model.initialize(LLAMA, device, 3); TrainingMethod m = Method.named(name).create(model, s);
             Model plain = Model.initialize(LLAMA, device, 4)) {
            ReferenceTrainer t = new ReferenceTrainer(model, m);
            for (Batch b : batches(LLAMA, 4, 9)) t.step(List.of(b));
            Linear l = model.blocks().get(0).linears().get(0);
            float[] base = l.weight().value().toArray();
            java.util.Map<String, float[]> values = model.values();
            assertEquals(plain.parameterNames(), values.keySet(), "the terms' own matrices are left out");
            assertTrue(!Arrays.equals(base, values.get(l.weight().name())), "the trained term is in the weight");
            assertArrayEquals(base, l.weight().value().toArray(), "the base weight is untouched");
            plain.load(values);
            double want = loss(model, probe);
            assertEquals(want, loss(plain, probe), 1e-5 * want);
        }
    }

    /**
     * A plain-loop run stopped after 3 steps and resumed in a fresh model and method from its checkpoint —
     * the model's values and the optimizer state; LoRA's base is the model the run started from — ends where
     * the uninterrupted run ends: bit for bit, but for RSO, whose resume folds B·Pᵀ into the weights, to
     * float32 rounding. LISA and RSO resume inside a period (2 steps), RSO with the projection redrawn at 2.
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"adamw", "adalomo", "galore", "lisa", "lisa-adalomo", "sgd", "lomo", "lora", "rso"})
    void aResumedRunEndsWhereTheUninterruptedOneEnds(String name) {
        OptimizerSettings d = OptimizerSettings.defaults(0.01f);
        OptimizerSettings s = d.withLisa(new Lisa(2, 2))
                .withLowRank(new LowRank(4, 2, d.lowRank().galoreGap(), d.lowRank().galoreScale(), d.lowRank().loraAlpha()));
        List<Batch> data = batches(LLAMA, 5, 31);
        java.util.Map<String, float[]> whole, resumed, wholeState, resumedState, weights, state, base;
        try (Model model = Model.initialize(LLAMA, device, 3); TrainingMethod m = Method.named(name).create(model, s)) {
            base = model.values();
            ReferenceTrainer t = new ReferenceTrainer(model, m);
            for (int i = 0; i < 3; i++) t.step(List.of(data.get(i)));
            weights = model.values();
            state = m.optimizerState();
            for (int i = 3; i < 5; i++) t.step(List.of(data.get(i)));
            whole = model.values();
            wholeState = m.optimizerState();
        }
        try (Model model = Model.initialize(LLAMA, device, 99)) {
            model.load(name.equals("lora") ? base : weights);
            try (TrainingMethod m = Method.named(name).create(model, s)) {
                m.restore(model, state);
                ReferenceTrainer t = new ReferenceTrainer(model, m, 3);
                for (int i = 3; i < 5; i++) t.step(List.of(data.get(i)));
                resumed = model.values();
                resumedState = m.optimizerState();
            }
        }
        float tol = name.equals("rso") ? 2e-6f : 0f;
        assertEquals(whole.keySet(), resumed.keySet());
        whole.forEach((n, w) -> assertArrayEquals(w, resumed.get(n), tol, n));
        assertEquals(wholeState.keySet(), resumedState.keySet());
        wholeState.forEach((n, v) -> assertArrayEquals(v, resumedState.get(n), name.equals("rso") ? 1e-4f : 0f, n));
    }

    /** The loss of a batch with no weight gradient computed anywhere. */
    static double loss(Model model, Batch b) {
        return model.forwardBackward(b.inputs(), b.targets(), b.batch(), b.seq(), 1f, stage -> null);
    }

    static List<String> names() {
        return Method.keys();
    }

    /** Every method lowers the loss of a tiny model trained from scratch, and frees what it allocated. */
    @ParameterizedTest
    @MethodSource("names")
    void everyMethodLowersTheLoss(String name) {
        float lr = switch (name) {
            case "sgd", "lomo", "lisa-lomo" -> 0.5f;
            case "adalomo", "lisa-adalomo" -> 0.05f;
            case "lora" -> 0.05f;
            default -> 0.01f;
        };
        OptimizerSettings s = OptimizerSettings.defaults(lr).withLisa(new Lisa(2, 3)).withLowRank(LowRank.DEFAULT.withRank(4));
        // LoRA adapts blocks between a frozen random embedding and head: on fresh batches its loss hardly
        // moves in 40 steps, so it shows that it learns by memorizing one batch (≈ 0.23 lower, steadily).
        List<Batch> data = name.equals("lora") ? java.util.Collections.nCopies(40, batches(LLAMA, 1, 21).get(0)) : batches(LLAMA, 40, 21);
        long paramsBefore;
        try (Model model = Model.initialize(LLAMA, device, 3)) {
            paramsBefore = device.memory().current(Category.PARAMETERS);
            double first, last = 0;
            try (TrainingMethod m = Method.named(name).create(model, s)) {
                ReferenceTrainer t = new ReferenceTrainer(model, m);
                first = t.step(List.of(data.get(0)));
                for (int i = 1; i < data.size(); i++) last = t.step(List.of(data.get(i)));
            }
            assertTrue(last < first - (name.equals("lora") ? 0.1 : 0.3), name + ": " + first + " -> " + last);
            assertEquals(paramsBefore, device.memory().current(Category.PARAMETERS), name + ": adapters removed on close");
            assertEquals(0, device.memory().current(Category.OPTIMIZER_STATE), name + ": state freed");
            assertEquals(0, device.memory().current(Category.GRADIENTS), name + ": gradients freed");
            for (TransformerBlock b : model.blocks()) assertTrue(b.linears().stream().allMatch(l -> l.lowRank() == null));
        }
    }
}
