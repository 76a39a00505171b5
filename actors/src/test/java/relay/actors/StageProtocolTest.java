package relay.actors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import relay.optimizers.LisaPolicy;
import relay.optimizers.Method;
import relay.stages.io.SafeTensors;
import relay.stages.layers.TransformerBlock;
import relay.stages.memory.Category;
import relay.stages.model.Embedding;
import relay.stages.model.Initializer;
import relay.stages.model.LmHead;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.Tensor;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.train.Batch;
import relay.transport.TensorPayload;

/**
 * Each actor's protocol in isolation, its neighbours and coordinator played by typed test probes; every
 * message crosses as Protobuf. The oracle for a stage's numbers is the same layer built from the same seed
 * and called directly.
 */
class StageProtocolTest {
    static ActorTestKit kit;
    CpuDevice device;

    @BeforeAll
    static void start() {
        kit = ActorTestKit.create(ConfigFactory.parseString("pekko.actor.serialize-messages = on").withFallback(ConfigFactory.load()));
    }

    @AfterAll
    static void stop() {
        kit.shutdownTestKit();
    }

    @BeforeEach
    void open() {
        device = new CpuDevice("cpu-protocol", 1);
    }

    @AfterEach
    void close() {
        device.close();
    }

    static final int B = 1, T = 5;
    static final long SEED = 3;
    static final ModelConfig LLAMA = PipelineEquivalenceTest.LLAMA;
    static final ModelConfig GPT2 = PipelineEquivalenceTest.GPT2;

    /** One stage under test between probes: every other stage is a probe, and so is its coordinator. */
    record Harness(ActorRef<StageCommand> stage, List<TestProbe<StageCommand>> others, TestProbe<StageEvent> events) {
        TestProbe<StageCommand> probe(int stage) {
            return others.get(stage);
        }
    }

    /** The stage alone on its device (each stage its own device), plain SGD at lr 0.1, eager mode, 1F1B. */
    Harness harness(ModelConfig cfg, int stage, String name) {
        int n = cfg.layers() + 2;
        int[] devices = new int[n];
        for (int s = 0; s < n; s++) devices[s] = s;
        PipelineConfig pc = PipelineConfig.defaults(Method.LOMO, 0.1f);
        StageSpec spec = new StageSpec(stage, 0, cfg, SEED, null, new Placement(n, devices), pc, 0);
        TestProbe<StageEvent> events = kit.createTestProbe();
        ActorRef<StageCommand> ref = kit.spawn(StageActor.create(spec, device, events.getRef(), null), name);
        StageEvent.Ready ready = events.expectMessageClass(StageEvent.Ready.class);
        assertEquals(stage, ready.stage());
        List<TestProbe<StageCommand>> probes = new ArrayList<>();
        List<ActorRef<StageCommand>> refs = new ArrayList<>();
        for (int s = 0; s < n; s++) {
            TestProbe<StageCommand> p = kit.createTestProbe();
            probes.add(p);
            refs.add(s == stage ? ref : p.getRef());
        }
        ref.tell(new StageCommand.Connect(refs, java.util.Collections.nCopies(refs.size(), "")));
        events.expectMessageClass(StageEvent.Connected.class);
        return new Harness(ref, probes, events);
    }

    Tensor random(int rows, int cols, long seed) {
        float[] v = new float[rows * cols];
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
        for (int i = 0; i < v.length; i++) v[i] = (float) r.nextDouble(-1, 1);
        return device.allocate(Category.ACTIVATIONS, rows, cols).copyFrom(v);
    }

    static Position pos(long step, long passId) {
        return new Position(step, Pass.TRAIN, passId, 0, 1, B, T, 1f);
    }

    static float[] taken(TensorPayload p, CpuDevice d) {
        try (Tensor t = p.materialize(d, Category.ACTIVATIONS)) {
            return t.toArray();
        }
    }

    Map<String, float[]> weights(Harness h) {
        h.stage().tell(new StageCommand.CollectWeights());
        List<TensorPart> parts = new ArrayList<>();
        StageEvent.Weights w;
        do {
            w = h.events().expectMessageClass(StageEvent.Weights.class);
            parts.addAll(w.parts());
        } while (!w.last());
        Map<String, float[]> out = new java.util.LinkedHashMap<>();
        for (SafeTensors.Tensor32 t : TensorPart.assemble(parts)) out.put(t.name(), t.values());
        return out;
    }

    @Test
    void blockForwardsThenBackwardsAndReportsThePass() {
        Harness h = harness(LLAMA, 1, "block-fb");
        int c = LLAMA.hidden();
        Position pos = pos(0, 1);
        Tensor x = random(B * T, c, 1);
        float[] xv = x.toArray();
        h.stage().tell(new StageCommand.Forward(pos, TensorPayload.of(x)));
        StageCommand.Forward out = h.probe(2).expectMessageClass(StageCommand.Forward.class);
        assertEquals(pos, out.pos());
        float[] y = taken(out.activation(), device);
        // The oracle: the same block from the same seed, called directly.
        try (TransformerBlock oracle = Model.block(LLAMA, 0, new Initializer(device, SEED));
             Tensor x2 = device.allocate(Category.ACTIVATIONS, B * T, c).copyFrom(xv)) {
            TransformerBlock.Forward f = oracle.forward(x2, B, T);
            assertArrayEquals(f.output().toArray(), y, 0f);
            f.output().close();
            f.saved().close();
        }
        h.stage().tell(new StageCommand.Backward(pos, TensorPayload.of(random(B * T, c, 2))));
        StageCommand.Backward back = h.probe(0).expectMessageClass(StageCommand.Backward.class);
        assertEquals(pos, back.pos());
        assertArrayEquals(new int[] {B * T, c}, back.gradient().shape());
        back.gradient().discard();
        StageEvent.PassDone done = h.events().expectMessageClass(StageEvent.PassDone.class);
        assertEquals(1, done.stage());
        assertTrue(done.busyNanos() > 0);
        kit.stop(h.stage());
    }

    /** A frozen block acknowledges, passes gradients back, and computes no weight gradient: its weights stay as they were. */
    @Test
    void aFrozenBlockAcknowledgesAndDoesNotUpdate() {
        Harness h = harness(LLAMA, 1, "block-freeze");
        Map<String, float[]> before = weights(h);
        h.stage().tell(new StageCommand.SetTrainable(3, false));
        StageEvent.TrainableSet set = h.events().expectMessageClass(StageEvent.TrainableSet.class);
        assertEquals(3, set.step());
        assertFalse(set.trainable());
        Position pos = pos(3, 1);
        h.stage().tell(new StageCommand.Forward(pos, TensorPayload.of(random(B * T, LLAMA.hidden(), 1))));
        h.probe(2).expectMessageClass(StageCommand.Forward.class).activation().discard();
        h.stage().tell(new StageCommand.Backward(pos, TensorPayload.of(random(B * T, LLAMA.hidden(), 2))));
        h.probe(0).expectMessageClass(StageCommand.Backward.class).gradient().discard();
        h.events().expectMessageClass(StageEvent.PassDone.class);
        weights(h).forEach((n, w) -> assertArrayEquals(before.get(n), w, 0f, n));
        kit.stop(h.stage());
    }

    @Test
    void aFailureNamesStageStepAndMicrobatch() {
        Harness h = harness(LLAMA, 1, "block-bad");
        Position pos = new Position(4, Pass.TRAIN, 9, 0, 1, B, T, 1f);
        // One column too many: the block's first norm rejects it.
        h.stage().tell(new StageCommand.Forward(pos, TensorPayload.of(random(B * T, LLAMA.hidden() + 1, 3))));
        StageEvent.Failed f = h.events().expectMessageClass(StageEvent.Failed.class, Duration.ofSeconds(10));
        assertEquals(StageEvent.Failure.FAULT, f.kind());
        assertTrue(f.reason().contains("block-0 (stage 1), step 4 microbatch 0/1"), f.reason());
        h.probe(2).expectNoMessage(Duration.ofMillis(100));
        kit.stop(h.stage());
    }

    /** A command a role cannot take is the sender's error: reported as such, naming the stage; the stage works on. */
    @Test
    void aRoleRefusesWhatItCannotTakeAndWorksOn() {
        Harness block = harness(LLAMA, 1, "block-refuses");
        block.stage().tell(new StageCommand.Tokens(pos(0, 1), new int[] {1, 2, 3, 4, 5}));
        StageEvent.Failed f = block.events().expectMessageClass(StageEvent.Failed.class);
        assertEquals(StageEvent.Failure.PROTOCOL, f.kind());
        assertTrue(f.reason().startsWith("block-0 (stage 1) cannot take Tokens"), f.reason());
        block.stage().tell(new StageCommand.Forward(pos(0, 1), TensorPayload.of(random(B * T, LLAMA.hidden(), 1))));
        block.probe(2).expectMessageClass(StageCommand.Forward.class).activation().discard();
        kit.stop(block.stage());

        Harness embedding = harness(LLAMA, 0, "embedding-refuses");
        embedding.stage().tell(new StageCommand.SetTrainable(0, false));
        assertTrue(embedding.events().expectMessageClass(StageEvent.Failed.class).reason()
                .startsWith("embedding (stage 0) cannot take SetTrainable"));
        kit.stop(embedding.stage());
    }

    @Test
    void theEmbeddingLooksUpTokensAndUpdatesTheRowsItSaw() {
        Harness h = harness(LLAMA, 0, "embedding");
        int[] ids = {3, 1, 4, 1, 5};
        Map<String, float[]> before = weights(h);
        Position pos = pos(0, 1);
        h.stage().tell(new StageCommand.Tokens(pos, ids));
        float[] x = taken(h.probe(1).expectMessageClass(StageCommand.Forward.class).activation(), device);
        try (Tensor oracle = Embedding.create(LLAMA, new Initializer(device, SEED)).forward(ids, T)) {
            assertArrayEquals(oracle.toArray(), x, 0f);
        }
        h.stage().tell(new StageCommand.Backward(pos, TensorPayload.of(random(B * T, LLAMA.hidden(), 7))));
        h.events().expectMessageClass(StageEvent.PassDone.class);
        float[] was = before.get("model.embed_tokens.weight"), now = weights(h).get("model.embed_tokens.weight");
        int c = LLAMA.hidden();
        for (int row = 0; row < LLAMA.vocabSize(); row++) {
            boolean seen = row == 1 || row == 3 || row == 4 || row == 5;
            boolean moved = !java.util.Arrays.equals(java.util.Arrays.copyOfRange(was, row * c, row * c + c),
                    java.util.Arrays.copyOfRange(now, row * c, row * c + c));
            assertEquals(seen, moved, "row " + row);
        }
        kit.stop(h.stage());
    }

    @Test
    void theHeadReportsTheLossAndSendsTheInputGradientUpstream() {
        Harness h = harness(LLAMA, LLAMA.layers() + 1, "head");
        int[] targets = {2, 7, 1, 8, 2};
        Tensor x = random(B * T, LLAMA.hidden(), 5);
        float[] xv = x.toArray();
        Position pos = pos(0, 1);
        h.stage().tell(new StageCommand.Targets(pos, targets, relay.stages.model.LmHead.counted(targets)));
        h.events().expectNoMessage(Duration.ofMillis(50));
        h.stage().tell(new StageCommand.Forward(pos, TensorPayload.of(x)));
        float[] dx = taken(h.probe(LLAMA.layers()).expectMessageClass(StageCommand.Backward.class).gradient(), device);
        StageEvent.Loss loss = h.events().expectMessageClass(StageEvent.Loss.class);
        Initializer init = new Initializer(device, SEED);
        LmHead oracle = LmHead.create(LLAMA, init, null);
        try (Tensor x2 = device.allocate(Category.ACTIVATIONS, B * T, LLAMA.hidden()).copyFrom(xv)) {
            LmHead.Result r = oracle.lossAndBackward(x2, targets, 1f, null);
            assertEquals(r.loss(), loss.loss());
            assertArrayEquals(r.dx().toArray(), dx, 0f);
            r.dx().close();
        }
        oracle.parameters(true).forEach(relay.stages.layers.Parameter::close);
        h.events().expectMessageClass(StageEvent.PassDone.class);
        kit.stop(h.stage());
    }

    /**
     * GPT-2's tied table: the head sends its gradient part to the embedding and holds its share of the pass
     * open until the new table comes back, which replaces its replica.
     */
    @Test
    void theTiedHeadSendsItsGradientPartAndTakesTheNewTable() {
        Harness h = harness(GPT2, GPT2.layers() + 1, "tied-head");
        Position pos = pos(0, 1);
        h.stage().tell(new StageCommand.Targets(pos, new int[] {1, 2, 3, 4, 5}, 5));
        h.stage().tell(new StageCommand.Forward(pos, TensorPayload.of(random(B * T, GPT2.hidden(), 5))));
        h.probe(GPT2.layers()).expectMessageClass(StageCommand.Backward.class).gradient().discard();
        h.events().expectMessageClass(StageEvent.Loss.class);
        StageCommand.TiedGradient part = h.probe(0).expectMessageClass(StageCommand.TiedGradient.class);
        assertArrayEquals(new int[] {GPT2.vocabSize(), GPT2.hidden()}, part.gradient().shape());
        part.gradient().discard();
        h.events().expectNoMessage(Duration.ofMillis(100));
        float[] table = new float[GPT2.vocabSize() * GPT2.hidden()];
        for (int i = 0; i < table.length; i++) table[i] = i * 0.25f;
        // The new table in parts of whole rows: the pass is done with the last of them, not before.
        try (Tensor whole = device.allocate(Category.COMMUNICATION, GPT2.vocabSize(), GPT2.hidden()).copyFrom(table)) {
            TiedRows.split(whole, 3 * GPT2.hidden() * 5, (row, rows) -> {
                h.events().expectNoMessage(Duration.ofMillis(50));
                h.stage().tell(new StageCommand.TiedWeights(0, row, TensorPayload.of(rows)));
            });
        }
        h.events().expectMessageClass(StageEvent.PassDone.class);
        assertArrayEquals(table, weights(h).get("transformer.wte.weight"), 0f);
        kit.stop(h.stage());
    }

    /** The tied embedding adds the head's part to its own, updates once, sends the table back, and only then is done. */
    @Test
    void theTiedEmbeddingWaitsForTheHeadsPartThenSendsTheTable() {
        Harness h = harness(GPT2, 0, "tied-embedding");
        Position pos = pos(0, 1);
        h.stage().tell(new StageCommand.Tokens(pos, new int[] {1, 2, 3, 4, 5}));
        h.probe(1).expectMessageClass(StageCommand.Forward.class).activation().discard();
        h.stage().tell(new StageCommand.Backward(pos, TensorPayload.of(random(B * T, GPT2.hidden(), 3))));
        h.events().expectNoMessage(Duration.ofMillis(100));
        // The head's part in parts of whole rows (15, 15 and 10 of the 40); the table goes back whole, as one part here.
        try (Tensor headPart = random(GPT2.vocabSize(), GPT2.hidden(), 4)) {
            TiedRows.split(headPart, 15 * GPT2.hidden(), (row, part) -> h.stage().tell(new StageCommand.TiedGradient(0, row, TensorPayload.of(part))));
        }
        StageCommand.TiedWeights back = h.probe(GPT2.layers() + 1).expectMessageClass(StageCommand.TiedWeights.class);
        assertEquals(0, back.row());
        float[] sent = taken(back.weights(), device);
        h.events().expectMessageClass(StageEvent.PassDone.class);
        assertArrayEquals(weights(h).get("transformer.wte.weight"), sent, 0f);
        kit.stop(h.stage());
    }

    /** Restored state is taken by name; values of the wrong size are refused with the stage and the tensor named. */
    @Test
    void stateIsRestoredByNameOrRefused() {
        int n = LLAMA.layers() + 2;
        int[] devices = new int[n];
        for (int s = 0; s < n; s++) devices[s] = s;
        PipelineConfig pc = PipelineConfig.defaults(Method.ADAMW, 0.01f);
        TestProbe<StageEvent> events = kit.createTestProbe();
        ActorRef<StageCommand> head = kit.spawn(StageActor.create(new StageSpec(n - 1, 0, LLAMA, SEED, null, new Placement(n, devices), pc,
                0), device, events.getRef(), null), "head-restore");
        events.expectMessageClass(StageEvent.Ready.class);
        int c = LLAMA.hidden();
        head.tell(new StageCommand.RestoreState(TensorPart.split(Map.of("model.norm.weight/m", new float[c], "model.norm.weight/v",
                new float[c]), 1000).get(0), false));
        head.tell(new StageCommand.RestoreState(TensorPart.split(Map.of("model.norm.weight/steps", new float[] {4}), 1000).get(0), true));
        StageEvent.Restored ok = events.expectMessageClass(StageEvent.Restored.class);
        assertNull(ok.error());
        assertTrue(ok.held().containsAll(List.of("model.norm.weight/m", "model.norm.weight/v", "model.norm.weight/steps")), ok.held().toString());
        head.tell(new StageCommand.CollectState());
        StageEvent.OptimizerState state = events.expectMessageClass(StageEvent.OptimizerState.class);
        assertTrue(state.last());
        assertArrayEquals(new float[] {4}, TensorPart.assembleValues(state.parts()).get("model.norm.weight/steps"));
        head.tell(new StageCommand.RestoreState(TensorPart.split(Map.of("model.norm.weight/m", new float[1], "model.norm.weight/v",
                new float[1], "model.norm.weight/steps", new float[] {1}), 1000).get(0), true));
        StageEvent.Restored bad = events.expectMessageClass(StageEvent.Restored.class);
        assertTrue(bad.error() != null && bad.error().startsWith("head: optimizer state model.norm.weight/m has 1 values"), bad.error());
        kit.stop(head);
    }

    static Batch batch() {
        return new Batch(new int[] {1, 2, 3}, new int[] {2, 3, 4}, 1, 3);
    }

    /** A coordinator whose stages are probes: the host probe takes the spawns, the test answers as the stages would. */
    record Driven(ActorRef<Coordinator.Command> coordinator, List<TestProbe<StageCommand>> stages, ActorRef<StageEvent> events) {}

    Driven coordinator(PipelineConfig pc, int stages) {
        int[] devices = new int[stages];
        Placement placement = new Placement(1, devices);
        ModelConfig cfg = new ModelConfig(LLAMA.family(), LLAMA.vocabSize(), LLAMA.hidden(), stages - 2, LLAMA.heads(), LLAMA.kvHeads(),
                LLAMA.headDim(), LLAMA.intermediate(), LLAMA.maxPositions(), LLAMA.normEps(), LLAMA.ropeTheta(), false);
        ActorRef<Coordinator.Command> c = kit.spawn(Coordinator.create(pc, placement));
        TestProbe<StageHost.Command> host = kit.createTestProbe();
        TestProbe<Coordinator.Gathered> started = kit.createTestProbe();
        List<StageSpec> specs = new ArrayList<>();
        for (int s = 0; s < stages; s++) specs.add(new StageSpec(s, 0, cfg, 1, null, placement, pc, 0));
        c.tell(new Coordinator.Start(specs, java.util.Collections.nCopies(stages, host.getRef()), started.getRef()));
        List<TestProbe<StageCommand>> probes = new ArrayList<>();
        ActorRef<StageEvent> events = null;
        for (int s = 0; s < stages; s++) {
            StageHost.Spawn spawn = host.expectMessageClass(StageHost.Spawn.class);
            assertEquals(s, spawn.spec().stage());
            events = spawn.events();
            probes.add(kit.createTestProbe());
        }
        for (int s = 0; s < stages; s++) events.tell(new StageEvent.Ready(s, probes.get(s).getRef(), List.of("p" + s), "", 1));
        for (int s = 0; s < stages; s++) {
            assertEquals(stages, probes.get(s).expectMessageClass(StageCommand.Connect.class).stages().size());
            events.tell(new StageEvent.Connected(s));
        }
        assertTrue(started.receiveMessage().ok());
        return new Driven(c, probes, events);
    }

    /** Events reach the coordinator through its adapter, as a stage's would. */
    static void report(Driven d, StageEvent e) {
        d.events().tell(e);
    }

    @Test
    void coordinatorStartsAPassAndClosesTheStepWhenEveryStageReported() {
        Driven d = coordinator(PipelineConfig.defaults(Method.LOMO, 0.1f), 3);
        TestProbe<Coordinator.StepResult> reply = kit.createTestProbe();
        d.coordinator().tell(new Coordinator.RunStep(List.of(batch()), reply.getRef()));
        StageCommand.Tokens tokens = d.stages().get(0).expectMessageClass(StageCommand.Tokens.class);
        assertArrayEquals(new int[] {1, 2, 3}, tokens.ids());
        assertArrayEquals(new int[] {2, 3, 4}, d.stages().get(2).expectMessageClass(StageCommand.Targets.class).ids());
        d.stages().get(1).expectNoMessage(Duration.ofMillis(50));
        Position pos = tokens.pos();
        report(d, new StageEvent.Loss(2, pos, 1.5));
        for (int s = 0; s < 3; s++) report(d, new StageEvent.PassDone(s, pos, 0, s, 1000));
        Coordinator.StepResult r = reply.receiveMessage();
        assertTrue(r.ok(), r.error());
        assertEquals(1.5, r.loss());
        assertEquals(2, r.staleness());
    }

    /** An evaluation is a forward-only pass that does not advance the step; a second one is a pass of its own. */
    @Test
    void coordinatorEvaluatesWithoutAdvancingTheStep() {
        Driven d = coordinator(PipelineConfig.defaults(Method.LOMO, 0.1f), 3);
        TestProbe<Coordinator.StepResult> reply = kit.createTestProbe();
        long previous = -1;
        for (int round = 0; round < 2; round++) {
            d.coordinator().tell(new Coordinator.Evaluate(List.of(batch(), batch()), reply.getRef()));
            Position p0 = d.stages().get(0).expectMessageClass(StageCommand.Tokens.class).pos();
            Position p1 = d.stages().get(0).expectMessageClass(StageCommand.Tokens.class).pos();
            d.stages().get(2).receiveSeveralMessages(2);
            assertEquals(Pass.EVAL, p0.pass());
            assertTrue(p0.passId() != previous);
            previous = p0.passId();
            report(d, new StageEvent.Loss(2, p0, 1.0));
            report(d, new StageEvent.Loss(2, p1, 2.0));
            for (int s = 0; s < 3; s++) report(d, new StageEvent.PassDone(s, p0, 0, 0, 10));
            Coordinator.StepResult r = reply.receiveMessage();
            assertTrue(r.ok(), r.error());
            assertEquals(1.5, r.loss());
            assertEquals(0, r.step());
        }
    }

    /**
     * The coordinator applies LISA's draw by SetTrainable messages, acknowledged before the step starts — at a
     * redraw (step 0), and at the first step of a coordinator resumed between redraws (step 7, period 5).
     */
    @ParameterizedTest(name = "first step {0}")
    @ValueSource(ints = {0, 7})
    void coordinatorFreezesAndUnfreezesBlocksBeforeTheStep(int first) {
        relay.optimizers.OptimizerSettings s = relay.optimizers.OptimizerSettings.defaults(0.1f).withLisa(new relay.optimizers.OptimizerSettings.Lisa(1, 5));
        PipelineConfig pc = PipelineConfig.defaults(Method.ADAMW, 0.1f).withSettings(s, true).withFirstStep(first);
        Driven d = coordinator(pc, 4);
        LisaPolicy lisa = new LisaPolicy(2, 1, 5, s.seed());
        TestProbe<Coordinator.StepResult> reply = kit.createTestProbe();
        d.coordinator().tell(new Coordinator.RunStep(List.of(batch()), reply.getRef()));
        int active = lisa.activeBlocks(first)[0];
        for (int b = 0; b < 2; b++) {
            StageCommand.SetTrainable st = d.stages().get(b + 1).expectMessageClass(StageCommand.SetTrainable.class);
            assertEquals(first, st.step());
            assertEquals(b == active, st.trainable());
        }
        d.stages().get(0).expectNoMessage(Duration.ofMillis(50));
        report(d, new StageEvent.TrainableSet(1, first, active == 0));
        report(d, new StageEvent.TrainableSet(2, first, active == 1));
        assertEquals(first, d.stages().get(0).expectMessageClass(StageCommand.Tokens.class).pos().step());
    }

    @Test
    void aStepThatDoesNotFinishTimesOutNamingTheStagesItWaitsFor() {
        Driven d = coordinator(PipelineConfig.defaults(Method.LOMO, 0.1f).withStepTimeout(Duration.ofMillis(300)), 3);
        TestProbe<Coordinator.StepResult> reply = kit.createTestProbe();
        d.coordinator().tell(new Coordinator.RunStep(List.of(batch()), reply.getRef()));
        Position pos = d.stages().get(0).expectMessageClass(StageCommand.Tokens.class).pos();
        report(d, new StageEvent.PassDone(0, pos, 0, 0, 1));
        Coordinator.StepResult r = reply.receiveMessage(Duration.ofSeconds(5));
        assertFalse(r.ok());
        assertTrue(r.error().contains("step 0 timed out") && r.error().contains("2 stage report(s) outstanding (block-0, head)"), r.error());
        d.coordinator().tell(new Coordinator.RunStep(List.of(batch()), reply.getRef()));
        assertTrue(reply.receiveMessage().error().contains("stopped after an earlier failure"));
    }
}
