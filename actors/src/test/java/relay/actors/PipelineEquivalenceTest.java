package relay.actors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import relay.optimizers.ClassicStep;
import relay.optimizers.Clipping;
import relay.optimizers.LisaPolicy;
import relay.optimizers.OptimizerSettings;
import relay.optimizers.OptimizerSettings.Adam;
import relay.optimizers.OptimizerSettings.Lisa;
import relay.optimizers.OptimizerSettings.LowRank;
import relay.optimizers.Method;
import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.model.Family;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.train.Batch;
import relay.stages.train.ReferenceTrainer;
import relay.stages.train.SyntheticData;
import relay.stages.train.TrainingMethod;

/**
 * The actor pipeline against the plain loop (same model, seed, data and rule), with Pekko's
 * serialize-messages check on, so every message crosses as Protobuf and every tensor as bytes.
 */
class PipelineEquivalenceTest {
    static final Config SERIALIZE = ConfigFactory.parseString("pekko.actor.serialize-messages = on");
    static final ModelConfig LLAMA = new ModelConfig(Family.LLAMA, 40, 16, 4, 4, 2, 4, 32, 16, 1e-5f, 10000.0, false);
    static final ModelConfig GPT2 = new ModelConfig(Family.GPT2, 40, 16, 3, 2, 2, 8, 32, 16, 1e-5f, 0, true);
    static final int STEPS = 3;
    static final long SEED = 5;

    static List<List<Batch>> data(ModelConfig cfg, int microbatches) {
        SyntheticData d = new SyntheticData(cfg.vocabSize(), 2, 6, 0.2, 13);
        List<List<Batch>> steps = new ArrayList<>();
        for (int s = 0; s < STEPS; s++) {
            List<Batch> mbs = new ArrayList<>();
            for (int j = 0; j < microbatches; j++) mbs.add(d.next());
            steps.add(mbs);
        }
        return steps;
    }

    record Run(double[] losses, Map<String, float[]> weights, Map<String, float[]> optimizerState) {}

    static Run reference(ModelConfig cfg, List<List<Batch>> data, java.util.function.Function<Model, TrainingMethod> method) {
        return reference(cfg, data, method, relay.stages.model.Precision.F32);
    }

    static Run reference(ModelConfig cfg, List<List<Batch>> data, java.util.function.Function<Model, TrainingMethod> method,
                         relay.stages.model.Precision precision) {
        try (CpuDevice d = new CpuDevice("ref", 1); Model m = Model.initialize(cfg, d, SEED, precision); TrainingMethod tm = method.apply(m)) {
            ReferenceTrainer t = new ReferenceTrainer(m, tm);
            double[] losses = new double[data.size()];
            for (int s = 0; s < data.size(); s++) losses[s] = t.step(data.get(s));
            // As the model computes: RSO's and LoRA's terms folded into their weights (what the pipeline reports too).
            return new Run(losses, m.values(), tm.optimizerState());
        }
    }

    static Run pipeline(ModelConfig cfg, List<List<Batch>> data, Placement placement, PipelineConfig pc) {
        return pipeline(cfg, data, placement, pc, SERIALIZE);
    }

    static Run pipeline(ModelConfig cfg, List<List<Batch>> data, Placement placement, PipelineConfig pc, Config config) {
        try (Pipeline p = Pipeline.start(cfg, SEED, placement, pc, config)) {
            double[] losses = new double[data.size()];
            for (int s = 0; s < data.size(); s++) {
                Coordinator.StepResult r = p.step(data.get(s));
                assertTrue(r.ok(), r.error());
                losses[s] = r.loss();
            }
            Map<String, float[]> w = p.weights();
            if (cfg.tiedEmbeddings()) assertArrayEquals(w.values().iterator().next(), p.tiedReplica(), "head replica in sync");
            return new Run(losses, w, p.optimizerState());
        }
    }

    static void assertSame(Run want, Run got, float tol) {
        assertArrayEquals(want.losses(), got.losses(), 1e-5, "losses");
        assertEquals(want.weights().keySet(), got.weights().keySet());
        want.weights().forEach((name, w) -> assertArrayEquals(w, got.weights().get(name), tol, name));
        // The optimizer state a checkpoint saves: the same moments and step counts, parameter by parameter.
        assertEquals(want.optimizerState().keySet(), got.optimizerState().keySet());
        want.optimizerState().forEach((name, v) -> assertArrayEquals(v, got.optimizerState().get(name), tol, name));
    }

    /** One device per stage group: 1–4 devices over embedding + 4 blocks + head. */
    static Placement placement(int devices) {
        return switch (devices) {
            case 1 -> new Placement(1, new int[] {0, 0, 0, 0, 0, 0});
            case 2 -> new Placement(2, new int[] {0, 0, 0, 1, 1, 1});
            case 3 -> new Placement(3, new int[] {0, 0, 1, 1, 2, 2});
            default -> new Placement(4, new int[] {0, 0, 1, 2, 3, 3});
        };
    }

    static Stream<Arguments> exactCases() {
        List<Arguments> cases = new ArrayList<>();
        for (PipelineSchedule s : PipelineSchedule.values()) {
            for (int m : new int[] {1, 2, 4}) {
                for (int devices = 1; devices <= 4; devices++) cases.add(Arguments.of(s, m, devices));
            }
        }
        return cases.stream();
    }

    /** Exact mode equals one large-batch AdamW step of the plain loop, for every schedule, microbatch and device count. */
    @ParameterizedTest(name = "{0}, {1} microbatches, {2} devices")
    @MethodSource("exactCases")
    void exactModeEqualsTheReferenceTrainer(PipelineSchedule schedule, int microbatches, int devices) {
        OptimizerSettings s = OptimizerSettings.defaults(0.01f);
        List<List<Batch>> data = data(LLAMA, microbatches);
        Run want = reference(LLAMA, data, m -> Method.named("adamw").create(m, s));
        Run got = pipeline(LLAMA, data, placement(devices),
                PipelineConfig.defaults(Method.ADAMW, 0.01f).with(UpdateMode.EXACT, schedule));
        assertSame(want, got, 2e-6f);
    }

    /**
     * The batches as rows of packed examples: sequence r of microbatch j holds two, split after 2 + (r + j) mod 3 tokens,
     * with their position ids; the first example's last input has no target (the second's first token is nobody's).
     */
    static List<List<Batch>> packed(List<List<Batch>> steps) {
        List<List<Batch>> out = new ArrayList<>();
        for (List<Batch> mbs : steps) {
            List<Batch> packed = new ArrayList<>();
            for (int j = 0; j < mbs.size(); j++) {
                Batch b = mbs.get(j);
                int[] targets = b.targets().clone(), positions = new int[b.tokens()];
                for (int r = 0; r < b.batch(); r++) {
                    int cut = 2 + (r + j) % 3;
                    for (int t = 0; t < b.seq(); t++) positions[r * b.seq() + t] = t < cut ? t : t - cut;
                    targets[r * b.seq() + cut - 1] = Batch.IGNORED;
                }
                packed.add(new Batch(b.inputs(), targets, b.batch(), b.seq(), positions));
            }
            out.add(packed);
        }
        return out;
    }

    static Stream<Arguments> packedCases() {
        ModelConfig window = new ModelConfig(Family.LLAMA, 40, 16, 4, 4, 2, 4, 32, 16, 1e-5f, 10000.0, false,
                ModelConfig.Options.plain(Family.LLAMA).withModelType("mistral").withWindow(3, 0));
        return Stream.of(Arguments.of("llama", LLAMA, PipelineSchedule.ONE_F_ONE_B, false),
                Arguments.of("llama", LLAMA, PipelineSchedule.ZB_H1, true),
                Arguments.of("mistral-window", window, PipelineSchedule.GPIPE, true),
                Arguments.of("gpt2", GPT2, PipelineSchedule.ONE_F_ONE_B, false),
                Arguments.of("gpt2", GPT2, PipelineSchedule.ZB_H1, true));
    }

    /**
     * Packed examples (position ids carried with every microbatch, kept by blocks that recompute too) train in the
     * pipeline exactly as in the plain loop: three microbatches over three devices (GPT-2: two), exact mode.
     */
    @ParameterizedTest(name = "{0}, {2}, recompute {3}")
    @MethodSource("packedCases")
    void packedBatchesInExactModeEqualTheLoop(String name, ModelConfig cfg, PipelineSchedule schedule, boolean recompute) {
        OptimizerSettings d = OptimizerSettings.defaults(0.01f);
        // Adam's ε raised as for the tied matrix below: its gradient is summed in another order than the loop's.
        OptimizerSettings s = d.withAdam(new Adam(0.9f, 0.999f, 1e-3f)).withLisa(new Lisa(1, 1));
        List<List<Batch>> data = packed(data(cfg, 3));
        List<List<Batch>> unpacked = data.stream().map(mbs -> mbs.stream().map(b -> new Batch(b.inputs(), b.targets(), b.batch(), b.seq()))
                .toList()).toList();
        Run want = reference(cfg, data, m -> Method.named("adamw").create(m, s));
        assertTrue(Math.abs(want.losses()[0] - reference(cfg, unpacked, m -> Method.named("adamw").create(m, s)).losses()[0]) > 1e-4,
                "the position ids change what the tokens see");
        Placement pl = cfg.family() == Family.GPT2 ? new Placement(2, new int[] {0, 0, 1, 1, 1}) : placement(3);
        Run got = pipeline(cfg, data, pl, PipelineConfig.defaults(Method.ADAMW, 0.01f).with(UpdateMode.EXACT, schedule)
                .withSettings(s, false).withRecompute(recompute));
        assertSame(want, got, 2e-6f);
    }

    /**
     * With LISA (one block trained, redrawn every step) and GPT-2's tied matrix split between two devices.
     * The tied gradient is summed in another order than the plain loop's (each side's microbatches first),
     * equal to rounding only; Adam's ε is raised so that rounding stays rounding (see the optimizers' tests).
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void exactModeWithLisaAndTiedEmbeddings(PipelineSchedule schedule) {
        OptimizerSettings d = OptimizerSettings.defaults(0.05f);
        OptimizerSettings s = d.withAdam(new Adam(0.9f, 0.999f, 1e-3f)).withLisa(new Lisa(1, 1));
        for (ModelConfig cfg : List.of(LLAMA, GPT2)) {
            List<List<Batch>> data = data(cfg, 2);
            Run want = reference(cfg, data, m -> new ClassicStep(s.adamW(), s.schedule(), s.clipping(), m,
                    new LisaPolicy(cfg.layers(), 1, 1, s.seed()), s.seed()));
            Placement pl = cfg == LLAMA ? placement(2) : new Placement(2, new int[] {0, 0, 1, 1, 1});
            Run got = pipeline(cfg, data, pl, PipelineConfig.defaults(Method.ADAMW, 0.05f).with(UpdateMode.EXACT, schedule)
                    .withSettings(s, true));
            assertSame(want, got, 2e-6f);
        }
    }

    /**
     * Every message and every tensor through Protobuf bytes, as between JVMs, changes nothing: the 1F1B exact
     * pipeline ends bit-identical to the one whose messages stay references (tied GPT-2 too).
     */
    @Test
    void messagesAsBytesEndBitIdenticalToMessagesAsReferences() {
        for (ModelConfig cfg : List.of(LLAMA, GPT2)) {
            List<List<Batch>> data = data(cfg, 4);
            Placement pl = cfg == LLAMA ? placement(3) : new Placement(2, new int[] {0, 0, 1, 1, 1});
            PipelineConfig pc = PipelineConfig.defaults(Method.ADAMW, 0.01f).with(UpdateMode.EXACT, PipelineSchedule.ONE_F_ONE_B);
            Run references = pipeline(cfg, data, pl, pc, ConfigFactory.empty());
            Run bytes = pipeline(cfg, data, pl, pc, SERIALIZE);
            assertArrayEquals(references.losses(), bytes.losses(), 0);
            assertSame(references, bytes, 0f);
        }
    }

    /**
     * ZB-H1 only moves each block's weight gradients later; each stage still sums its microbatches in their
     * order, so in exact mode it ends bit-identical to 1F1B (tied GPT-2 and AdaLomo too).
     */
    @Test
    void zeroBubbleEndsBitIdenticalToOneFOneB() {
        for (ModelConfig cfg : List.of(LLAMA, GPT2)) {
            for (Method method : List.of(Method.ADAMW, Method.ADALOMO)) {
                List<List<Batch>> data = data(cfg, 4);
                Placement pl = cfg == LLAMA ? placement(3) : new Placement(2, new int[] {0, 0, 1, 1, 1});
                PipelineConfig pc = PipelineConfig.defaults(method, 0.01f);
                Run oneFOneB = pipeline(cfg, data, pl, pc.with(UpdateMode.EXACT, PipelineSchedule.ONE_F_ONE_B), ConfigFactory.empty());
                Run zb = pipeline(cfg, data, pl, pc.with(UpdateMode.EXACT, PipelineSchedule.ZB_H1), ConfigFactory.empty());
                assertArrayEquals(oneFOneB.losses(), zb.losses(), 0);
                assertSame(oneFOneB, zb, 0f);
            }
        }
    }

    /**
     * RSO, GaLore and LoRA on small ranks with a subspace redraw and a projector refresh inside the run (period 2
     * over 3 steps), Adam's ε raised as in the LISA test so that a reordered sum's rounding stays rounding.
     */
    static OptimizerSettings lowRankSettings(float lr) {
        OptimizerSettings d = OptimizerSettings.defaults(lr);
        return d.withAdam(new Adam(0.9f, 0.999f, 1e-3f))
                .withLowRank(new LowRank(4, 2, 2, d.lowRank().galoreScale(), d.lowRank().loraAlpha()));
    }

    static Stream<Arguments> lowRankCases() {
        List<Arguments> cases = new ArrayList<>();
        for (Method method : List.of(Method.RSO, Method.GALORE, Method.LORA)) {
            for (ModelConfig cfg : List.of(LLAMA, GPT2)) {
                for (PipelineSchedule s : List.of(PipelineSchedule.ONE_F_ONE_B, PipelineSchedule.ZB_H1)) {
                    cases.add(Arguments.of(method, cfg.family(), s));
                }
            }
        }
        return cases.stream();
    }

    static Placement lowRankPlacement(ModelConfig cfg) {
        return cfg == LLAMA ? placement(3) : new Placement(2, new int[] {0, 0, 1, 1, 1});
    }

    /**
     * RSO, GaLore and LoRA in the block actors — each block holding its own subspaces, projectors or adapters,
     * RSO's redraw sent by the coordinator — in exact mode with one microbatch per step: the plain loop's
     * in-backward method, bit for bit on LLaMA; on GPT-2 to float32 rounding in the tied matrix, whose two
     * gradient parts the pipeline adds in another order (the head's sum arrives by message and is added to the
     * embedding's; the loop adds the embedding's rows into the head's product).
     */
    @ParameterizedTest(name = "{0} on {1}, {2}")
    @MethodSource("lowRankCases")
    void lowRankMethodsInExactModeEqualTheLoop(Method method, Family family, PipelineSchedule schedule) {
        ModelConfig cfg = family == Family.LLAMA ? LLAMA : GPT2;
        List<List<Batch>> data = data(cfg, 1);
        assertLoopAndPipelineAlike(method, cfg, data, data, lowRankPlacement(cfg), UpdateMode.EXACT, schedule, cfg == LLAMA ? 0f : 2e-6f);
    }

    /** The plain loop's method over {@code loopData} against the pipeline over {@code pipelineData}, to {@code tol}. */
    static void assertLoopAndPipelineAlike(Method method, ModelConfig cfg, List<List<Batch>> loopData, List<List<Batch>> pipelineData,
                                           Placement placement, UpdateMode mode, PipelineSchedule schedule, float tol) {
        OptimizerSettings s = lowRankSettings(0.02f);
        Run want = reference(cfg, loopData, m -> method.create(m, s));
        Run got = pipeline(cfg, pipelineData, placement, PipelineConfig.defaults(method, 0.02f).with(mode, schedule).withSettings(s, false));
        assertSame(want, got, tol);
    }

    /**
     * Exact mode sums a step's microbatches and updates once: the loop's update over the same sequences as one
     * batch. Equal to float32 rounding — the pipeline adds two microbatch gradients of half the scale where the
     * loop's products run over all rows at once.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("lowRankMethods")
    void lowRankMethodsInExactModeEqualTheLoopsLargeBatch(Method method) {
        List<List<Batch>> data = data(LLAMA, 2);
        List<List<Batch>> joined = data.stream().map(mbs -> List.of(join(mbs))).toList();
        assertLoopAndPipelineAlike(method, LLAMA, joined, data, placement(2), UpdateMode.EXACT, PipelineSchedule.ONE_F_ONE_B, 1e-4f);
    }

    /**
     * Eager mode on one device runs F0 B0 F1 B1: the loop's in-backward update, microbatch by microbatch, bit for
     * bit (LLaMA: a tied matrix is updated once per step in the pipeline, once per microbatch in the loop).
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("lowRankMethods")
    void lowRankMethodsInEagerModeOnOneDeviceEqualTheLoop(Method method) {
        List<List<Batch>> data = data(LLAMA, 2);
        assertLoopAndPipelineAlike(method, LLAMA, data, data, placement(1), UpdateMode.EAGER, PipelineSchedule.ONE_F_ONE_B, 0f);
    }

    static Stream<Method> lowRankMethods() {
        return Stream.of(Method.RSO, Method.GALORE, Method.LORA);
    }

    /** The microbatches of a step as one batch of all their sequences. */
    static Batch join(List<Batch> mbs) {
        int seq = mbs.get(0).seq(), rows = mbs.stream().mapToInt(Batch::batch).sum();
        int[] in = new int[rows * seq], out = new int[rows * seq];
        int at = 0;
        for (Batch b : mbs) {
            System.arraycopy(b.inputs(), 0, in, at, b.tokens());
            System.arraycopy(b.targets(), 0, out, at, b.tokens());
            at += b.tokens();
        }
        return new Batch(in, out, rows, seq);
    }

    static Stream<PipelineSchedule> schedules() {
        return Stream.of(PipelineSchedule.values());
    }

    /**
     * Eager mode with one microbatch is exactly single-process LOMO, with LOMO's global-norm clipping too, for
     * every schedule: a split backward's W applies each layer's gradient after the block's input gradient is
     * complete, and LOMO's in-backward update never changes a weight before its own input gradient used it.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void eagerWithOneMicrobatchEqualsLomo(PipelineSchedule schedule) {
        OptimizerSettings s = OptimizerSettings.defaults(0.3f).withClipping(new Clipping(0f, 0.5f));
        for (ModelConfig cfg : List.of(LLAMA, GPT2)) {
            List<List<Batch>> data = data(cfg, 1);
            Run want = reference(cfg, data, m -> Method.named("lomo").create(m, s));
            Placement pl = cfg == LLAMA ? placement(3) : new Placement(2, new int[] {0, 0, 1, 1, 1});
            Run got = pipeline(cfg, data, pl, PipelineConfig.defaults(Method.LOMO, 0.3f).with(UpdateMode.EAGER, schedule).withSettings(s, false));
            assertSame(want, got, 2e-6f);
        }
    }

    /** Eager AdamW with one microbatch equals AdamW applied inside backward by the plain loop. */
    @Test
    void eagerAdamwEqualsFusedAdamw() {
        OptimizerSettings s = OptimizerSettings.defaults(0.01f);
        List<List<Batch>> data = data(LLAMA, 1);
        Run want = reference(LLAMA, data, m -> Method.named("adamw-fused").create(m, s));
        Run got = pipeline(LLAMA, data, placement(2), PipelineConfig.defaults(Method.ADAMW, 0.01f));
        assertSame(want, got, 2e-6f);
    }

    /**
     * Eager mode with several microbatches updates at every backward (at every W when split): weights move
     * between a forward and its weight gradient. GPipe's last backward follows three updates; on two devices
     * 1F1B's first device runs two forwards before its first backward: one update in between; ZB-H1's second
     * device forwards microbatch 1 before W0 and microbatch 2 before W1: one update each, too.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("schedules")
    void eagerStalenessIsMeasured(PipelineSchedule schedule) {
        List<List<Batch>> data = data(LLAMA, 4);
        try (Pipeline p = Pipeline.start(LLAMA, SEED, placement(2), PipelineConfig.defaults(Method.LOMO, 0.1f).with(UpdateMode.EAGER, schedule),
                SERIALIZE)) {
            Coordinator.StepResult r = p.step(data.get(0));
            assertTrue(r.ok(), r.error());
            assertEquals(schedule == PipelineSchedule.GPIPE ? 3 : 1, r.staleness(), "staleness");
            assertTrue(Double.isFinite(r.loss()));
        }
    }

    /** During an eager run a device never holds more gradient than its largest parameter; a frozen block's device holds none. */
    @Test
    void eagerGradientMemoryIsOneParameterAndZeroWhenFrozen() {
        OptimizerSettings s = OptimizerSettings.defaults(0.01f).withLisa(new Lisa(1, 1));
        Placement pl = new Placement(4, new int[] {0, 1, 2, 3, 3, 3});
        List<List<Batch>> data = data(LLAMA, 2);
        try (Pipeline p = Pipeline.start(LLAMA, SEED, pl, PipelineConfig.defaults(Method.ADAMW, 0.01f).withSettings(s, true), SERIALIZE)) {
            LisaPolicy policy = new LisaPolicy(LLAMA.layers(), 1, 1, s.seed());
            p.memoryPeaks();
            for (int step = 0; step < STEPS; step++) {
                assertTrue(p.step(data.get(step)).ok());
                Map<Integer, Map<Category, Long>> peaks = p.memoryPeaks();
                for (int b = 0; b < 2; b++) {
                    long peak = peaks.get(b + 1).get(Category.GRADIENTS);
                    if (policy.isActive(b, step)) {
                        long largest = 4L * Math.max(LLAMA.hidden() * LLAMA.intermediate(), LLAMA.hidden() * LLAMA.heads() * LLAMA.headDim());
                        assertTrue(peak > 0 && peak <= largest, "block " + b + " step " + step + ": " + peak);
                    } else {
                        assertEquals(0, peak, "frozen block " + b + " at step " + step);
                    }
                }
                long headLargest = 4L * LLAMA.vocabSize() * LLAMA.hidden();
                assertTrue(peaks.get(3).get(Category.GRADIENTS) <= headLargest);
            }
        }
    }
}
