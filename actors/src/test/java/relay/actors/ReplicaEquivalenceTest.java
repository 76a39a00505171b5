package relay.actors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static relay.actors.PipelineEquivalenceTest.GPT2;
import static relay.actors.PipelineEquivalenceTest.LLAMA;
import static relay.actors.PipelineEquivalenceTest.SEED;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import relay.actors.PipelineEquivalenceTest.Run;
import relay.optimizers.Clipping;
import relay.optimizers.Method;
import relay.optimizers.OptimizerSettings;
import relay.optimizers.OptimizerSettings.Adam;
import relay.optimizers.OptimizerSettings.Lisa;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;
import relay.stages.train.Batch;

/**
 * Two replicas of a two-device pipeline, each taking half of every microbatch's sequences and the replicas of each
 * stage summing their gradients before its owner updates, against one replica of the same pipeline taking the whole
 * microbatches: the same run to float32 rounding (the sums are taken in another order), and bit-identical to itself.
 * Every message crosses as Protobuf bytes, as between JVMs.
 */
class ReplicaEquivalenceTest {
    /** Float32 rounding of gradients summed in another order, through three updates. */
    static final float TOLERANCE = 2e-6f;

    /**
     * AdamW, AdaLomo and LOMO on LLaMA and GPT-2 (whose tied table the embedding's replicas settle). Not AdaLomo on
     * GPT-2: its key bias has a gradient that is rounding alone (softmax ignores it), which AdaLomo scales to a full
     * step, so that parameter follows the rounding of the sum and no two summation orders agree on it.
     */
    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        for (UpdateMode mode : UpdateMode.values()) {
            for (Method m : List.of(Method.ADAMW, Method.ADALOMO, Method.LOMO)) {
                for (ModelConfig cfg : m == Method.ADALOMO ? List.of(LLAMA) : List.of(LLAMA, GPT2)) {
                    for (PipelineSchedule s : List.of(PipelineSchedule.ONE_F_ONE_B, PipelineSchedule.ZB_H1)) {
                        out.add(Arguments.of(mode, m, cfg.family(), s));
                    }
                }
            }
        }
        return out.stream();
    }

    /** Adam's ε raised so that rounding stays rounding; LOMO clips by the global norm, so a norm pass runs first. */
    static PipelineConfig config(Method method, PipelineSchedule schedule) {
        return config(UpdateMode.EXACT, method, schedule);
    }

    static PipelineConfig config(UpdateMode mode, Method method, PipelineSchedule schedule) {
        OptimizerSettings d = OptimizerSettings.defaults(method.defaultLearningRate());
        OptimizerSettings s = method == Method.LOMO ? d.withClipping(new Clipping(0f, 1f)) : d.withAdam(new Adam(0.9f, 0.999f, 1e-3f));
        return PipelineConfig.defaults(method, method.defaultLearningRate()).with(mode, schedule).withSettings(s, false);
    }

    static Placement twoDevices(ModelConfig cfg) {
        return cfg == LLAMA ? PipelineEquivalenceTest.placement(2) : new Placement(2, new int[] {0, 0, 1, 1, 1});
    }

    /**
     * In exact mode the replicas settle each sum once a step; in eager mode once a backward, each stage waiting for its
     * new weights before its next action — so each microbatch's update is the whole microbatch's, as in one replica.
     */
    @ParameterizedTest(name = "{0}, {1}, {2}, {3}")
    @MethodSource("cases")
    void twoReplicasEqualOneWithTwiceTheBatch(UpdateMode mode, Method method, relay.stages.model.Family family, PipelineSchedule schedule) {
        ModelConfig cfg = family == LLAMA.family() ? LLAMA : GPT2;
        List<List<Batch>> data = PipelineEquivalenceTest.data(cfg, 2);
        PipelineConfig pc = config(mode, method, schedule);
        Run one = PipelineEquivalenceTest.pipeline(cfg, data, twoDevices(cfg), pc);
        Run two = PipelineEquivalenceTest.pipeline(cfg, data, twoDevices(cfg).withReplicas(2), pc);
        PipelineEquivalenceTest.assertSame(one, two, TOLERANCE);
        Run again = PipelineEquivalenceTest.pipeline(cfg, data, twoDevices(cfg).withReplicas(2), pc);
        PipelineEquivalenceTest.assertSame(two, again, 0f);
    }

    /**
     * With LOMO's clipping by global norm the replicas' norm pass measures the whole batch's gradient: two replicas end
     * where the plain loop's SGD with the whole microbatches ends, on GPT-2's tied table too.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("families")
    void normClippedReplicasEqualThePlainLoop(relay.stages.model.Family family) {
        ModelConfig cfg = family == LLAMA.family() ? LLAMA : GPT2;
        List<List<Batch>> data = PipelineEquivalenceTest.data(cfg, 2);
        PipelineConfig pc = config(Method.LOMO, PipelineSchedule.ONE_F_ONE_B);
        Run loop = PipelineEquivalenceTest.reference(cfg, data, m -> Method.SGD.create(m, pc.settings()));
        PipelineEquivalenceTest.assertSame(loop, PipelineEquivalenceTest.pipeline(cfg, data, twoDevices(cfg).withReplicas(2), pc), TOLERANCE);
    }

    static Stream<relay.stages.model.Family> families() {
        return Stream.of(LLAMA.family(), GPT2.family());
    }

    /** Three replicas, each gradient summed along a chain of two hops to its owner: still the one-replica run, and itself. */
    @Test
    void threeReplicasSumAlongTheChain() {
        relay.stages.train.SyntheticData d = new relay.stages.train.SyntheticData(LLAMA.vocabSize(), 3, 6, 0.2, 13);
        List<List<Batch>> data = new ArrayList<>();
        for (int s = 0; s < PipelineEquivalenceTest.STEPS; s++) data.add(List.of(d.next(), d.next()));
        PipelineConfig pc = config(Method.ADAMW, PipelineSchedule.ZB_H1);
        Placement one = new Placement(1, new int[] {0, 0, 0, 0, 0, 0});
        Run three = PipelineEquivalenceTest.pipeline(LLAMA, data, one.withReplicas(3), pc);
        PipelineEquivalenceTest.assertSame(PipelineEquivalenceTest.pipeline(LLAMA, data, one, pc), three, TOLERANCE);
        PipelineEquivalenceTest.assertSame(three, PipelineEquivalenceTest.pipeline(LLAMA, data, one.withReplicas(3), pc), 0f);
    }

    /**
     * In bfloat16 — the owner's update rounding stochastically, keyed by step and parameter — two replicas end
     * bit-identical to themselves and near one replica: where the update rounded differs in its last bits, each step's
     * rounding may land on the neighbouring bfloat16, so after three steps a weight is at most three bfloat16 steps
     * (each at most |w| / 128) from one replica's. (Partial sums passed on in bfloat16 left weights of GPT-2's table
     * up to eight steps away: two replicas' sums that nearly cancel lose their difference to the rounding, which Adam
     * then scales up; so they travel in float32.)
     */
    @Test
    void bf16ReplicasAreBitIdenticalToThemselves() {
        PipelineConfig pc = config(Method.ADAMW, PipelineSchedule.ONE_F_ONE_B).withPrecision(relay.stages.model.Precision.BF16);
        List<List<Batch>> data = PipelineEquivalenceTest.data(GPT2, 2);
        Run two = PipelineEquivalenceTest.pipeline(GPT2, data, twoDevices(GPT2).withReplicas(2), pc);
        PipelineEquivalenceTest.assertSame(two, PipelineEquivalenceTest.pipeline(GPT2, data, twoDevices(GPT2).withReplicas(2), pc), 0f);
        Run one = PipelineEquivalenceTest.pipeline(GPT2, data, twoDevices(GPT2), pc);
        assertArrayEquals(one.losses(), two.losses(), 1e-3);
        one.weights().forEach((name, w) -> {
            float[] v = two.weights().get(name);
            for (int i = 0; i < w.length; i++) {
                assertEquals(w[i], v[i], PipelineEquivalenceTest.STEPS * Math.abs(w[i]) / 128 + 1e-6f, name + "[" + i + "]");
            }
        });
    }

    /** Each replica's stages trace their part of the exchange on their own tracks. */
    @Test
    void theExchangeIsTraced() {
        PipelineConfig pc = config(Method.ADAMW, PipelineSchedule.ONE_F_ONE_B).withTrace(true);
        try (Pipeline p = Pipeline.start(LLAMA, SEED, twoDevices(LLAMA).withReplicas(2), pc, PipelineEquivalenceTest.SERIALIZE)) {
            assertTrue(p.step(PipelineEquivalenceTest.data(LLAMA, 2).get(0)).ok());
            java.util.Set<String> exchanging = new java.util.TreeSet<>();
            for (TraceEvent e : p.trace()) if (e.name().equals("replicas")) exchanging.add(e.actor());
            assertTrue(exchanging.containsAll(List.of("block-0-r0", "block-0-r1", "embedding-r0", "head-r1")), exchanging.toString());
        }
    }

    /** LISA draws the same blocks on every replica: with one block trained and redrawn every step, still the one-replica run. */
    @Test
    void lisaDrawsTheSameBlocksOnEveryReplica() {
        PipelineConfig pc = config(Method.LISA_ADALOMO, PipelineSchedule.ONE_F_ONE_B)
                .withSettings(OptimizerSettings.defaults(Method.LISA_ADALOMO.defaultLearningRate()).withLisa(new Lisa(1, 1)), true);
        List<List<Batch>> data = PipelineEquivalenceTest.data(LLAMA, 2);
        PipelineEquivalenceTest.assertSame(PipelineEquivalenceTest.pipeline(LLAMA, data, twoDevices(LLAMA), pc),
                PipelineEquivalenceTest.pipeline(LLAMA, data, twoDevices(LLAMA).withReplicas(2), pc), TOLERANCE);
    }

    /**
     * Each replica keeps the optimizer state of the parameters it owns only: together exactly the one replica's, each
     * at most half of it plus one parameter's (the bound of handing the largest parameters out first).
     */
    @Test
    void optimizerStateIsShardedOverTheReplicas() {
        PipelineConfig pc = config(Method.ADAMW, PipelineSchedule.ONE_F_ONE_B);
        List<List<Batch>> data = PipelineEquivalenceTest.data(LLAMA, 2);
        long one = stateBytes(data, twoDevices(LLAMA), pc)[0];
        long[] two = stateBytes(data, twoDevices(LLAMA).withReplicas(2), pc);
        assertEquals(one, two[0] + two[1], "the replicas' state together");
        // AdamW keeps two float32 moments per value; the largest parameter is the token table.
        long largest = 2L * 4 * LLAMA.vocabSize() * LLAMA.hidden();
        for (long r : two) assertTrue(r > 0 && r <= one / 2 + largest, "a replica's state " + r + " of " + one);
    }

    /** Optimizer state bytes each replica's devices hold after the run, by replica. */
    private static long[] stateBytes(List<List<Batch>> data, Placement placement, PipelineConfig pc) {
        try (Pipeline p = Pipeline.start(LLAMA, SEED, placement, pc, PipelineEquivalenceTest.SERIALIZE)) {
            for (List<Batch> step : data) assertTrue(p.step(step).ok());
            long[] out = new long[placement.replicas()];
            for (Map.Entry<Integer, Map<Category, Long>> d : p.memoryPeaks().entrySet()) {
                if (d.getKey() < 0) continue; // the nodes' bytes in flight and snapshots, no device's
                out[d.getKey() / placement.devices()] += d.getValue().getOrDefault(Category.OPTIMIZER_STATE, 0L);
            }
            return out;
        }
    }

    @Test
    void replicasNeedEvenShares() {
        Placement two = twoDevices(LLAMA).withReplicas(2);
        try (Pipeline p = Pipeline.start(LLAMA, SEED, two, config(Method.ADAMW, PipelineSchedule.ONE_F_ONE_B), PipelineEquivalenceTest.SERIALIZE)) {
            Batch odd = new Batch(new int[18], new int[18], 3, 6);
            assertTrue(assertThrows(IllegalArgumentException.class, () -> p.step(List.of(odd))).getMessage().contains("3 sequences"));
        }
    }

    /** An evaluation splits its batches too: the same loss as one replica's. */
    @Test
    void evaluationIsTheOneReplicasLoss() {
        PipelineConfig pc = config(Method.ADAMW, PipelineSchedule.ONE_F_ONE_B);
        List<Batch> batches = PipelineEquivalenceTest.data(LLAMA, 2).get(0);
        double one, two;
        try (Pipeline p = Pipeline.start(LLAMA, SEED, twoDevices(LLAMA), pc, PipelineEquivalenceTest.SERIALIZE)) {
            one = p.evaluate(batches);
        }
        try (Pipeline p = Pipeline.start(LLAMA, SEED, twoDevices(LLAMA).withReplicas(2), pc, PipelineEquivalenceTest.SERIALIZE)) {
            two = p.evaluate(batches);
        }
        assertEquals(one, two, 1e-6 * Math.abs(one));
    }

    /**
     * The same data with targets masked unevenly over the replicas' shares and the microbatches (instruction data:
     * prompts and padding are not counted) — the first sequence of each microbatch counts one target or none, the second
     * all six: a share weighs as many of the step's targets as it counts, so two replicas train on, and report, the
     * mean over every target of the step, as one replica and the plain loop do. (With each share's mean weighed
     * equally, the first share's one token weighed as much as the second's six.)
     */
    @ParameterizedTest(name = "{0}")
    @org.junit.jupiter.params.provider.EnumSource(UpdateMode.class)
    void unevenlyMaskedSharesWeighByTheTargetsTheyCount(UpdateMode mode) {
        List<List<Batch>> data = new ArrayList<>();
        int k = 0;
        for (List<Batch> step : PipelineEquivalenceTest.data(LLAMA, 2)) {
            List<Batch> masked = new ArrayList<>();
            for (Batch b : step) {
                int[] targets = b.targets().clone();
                int kept = k++ % 2 == 0 ? 1 : 0;
                for (int t = 0; t < b.seq() - kept; t++) targets[t] = -1;
                masked.add(new Batch(b.inputs(), targets, b.batch(), b.seq(), b.positions()));
            }
            data.add(masked);
        }
        PipelineConfig pc = config(mode, Method.ADAMW, PipelineSchedule.ONE_F_ONE_B);
        Run one = PipelineEquivalenceTest.pipeline(LLAMA, data, twoDevices(LLAMA), pc);
        PipelineEquivalenceTest.assertSame(one, PipelineEquivalenceTest.pipeline(LLAMA, data, twoDevices(LLAMA).withReplicas(2), pc), TOLERANCE);
        if (mode == UpdateMode.EXACT) {
            // And the plain loop, whose microbatches weigh the targets they count the same way.
            Run loop = PipelineEquivalenceTest.reference(LLAMA, data, m -> Method.ADAMW.create(m, pc.settings()));
            PipelineEquivalenceTest.assertSame(loop, one, TOLERANCE);
        }
        double whole, shared;
        try (Pipeline p = Pipeline.start(LLAMA, SEED, twoDevices(LLAMA), pc, PipelineEquivalenceTest.SERIALIZE)) {
            whole = p.evaluate(data.get(0));
        }
        try (Pipeline p = Pipeline.start(LLAMA, SEED, twoDevices(LLAMA).withReplicas(2), pc, PipelineEquivalenceTest.SERIALIZE)) {
            shared = p.evaluate(data.get(0));
        }
        assertEquals(whole, shared, 1e-6 * Math.abs(whole), "the evaluation's loss too");
    }
}
