package relay.actors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import java.time.Duration;
import java.util.List;
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
import relay.optimizers.Clipping;
import relay.optimizers.LisaPolicy;
import relay.optimizers.Schedule;
import relay.optimizers.Sgd;
import relay.stages.layers.TransformerBlock;
import relay.stages.memory.Category;
import relay.stages.model.Initializer;
import relay.stages.model.Model;
import relay.stages.tensor.Tensor;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.train.Batch;
import relay.transport.TensorPayload;

/** Each actor's protocol in isolation, its neighbours played by typed test probes; messages cross as Protobuf. */
class StageProtocolTest {
    static ActorTestKit kit;
    CpuDevice device;

    @BeforeAll
    static void start() {
        kit = ActorTestKit.create(ConfigFactory.parseString("pekko.actor.serialize-messages = on")
                .withFallback(ConfigFactory.load()));
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

    record Harness(ActorRef<StageActor.Command> stage, TestProbe<StageActor.Command> prev, TestProbe<StageActor.Command> next,
                   TestProbe<Coordinator.Command> coordinator, TransformerBlock block) {}

    /** A block stage alone on its device, between two probes. */
    Harness block(String name) {
        TransformerBlock block = Model.block(PipelineEquivalenceTest.LLAMA, 0, new Initializer(device, 3));
        TestProbe<StageActor.Command> prev = kit.createTestProbe(), next = kit.createTestProbe();
        TestProbe<Coordinator.Command> coord = kit.createTestProbe();
        StageOptimizer opt = new StageOptimizer(new Sgd(0f), Schedule.constant(0.1f), Clipping.NONE, UpdateMode.EAGER, null);
        ActorRef<StageActor.Command> stage = kit.spawn(StageActor.create(1, name, device, new StageActor.Work(null, block, null),
                false, new StageActor.Layout(PipelineSchedule.ONE_F_ONE_B, 0, 1), opt, coord.getRef(),
                new TraceRecorder(0, name, 0, 1, 0)), name);
        stage.tell(new StageActor.Connect(prev.getRef(), next.getRef(), prev.getRef(), next.getRef(), stage, stage, stage));
        return new Harness(stage, prev, next, coord, block);
    }

    Tensor random(int rows, int cols, long seed) {
        float[] v = new float[rows * cols];
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
        for (int i = 0; i < v.length; i++) v[i] = (float) r.nextDouble(-1, 1);
        return device.allocate(Category.ACTIVATIONS, rows, cols).copyFrom(v);
    }

    @Test
    void blockForwardsThenBackwardsAndReportsThePass() {
        Harness h = block("block-fb");
        int c = PipelineEquivalenceTest.LLAMA.hidden();
        Position pos = new Position(0, 0, 1, B, T, false, 1f);
        Tensor x = random(B * T, c, 1);
        float[] xv = x.toArray();
        h.stage().tell(new StageActor.Forward(pos, TensorPayload.of(x)));
        StageActor.Forward out = h.next().expectMessageClass(StageActor.Forward.class);
        assertEquals(pos, out.pos());
        float[] y;
        try (Tensor t = out.activation().materialize(device, Category.ACTIVATIONS)) {
            y = t.toArray();
        }
        // The oracle: the same block, called directly (the stage has not updated yet: no backward has run).
        try (Tensor x2 = device.allocate(Category.ACTIVATIONS, B * T, c).copyFrom(xv)) {
            TransformerBlock.Forward f = h.block().forward(x2, B, T);
            assertArrayEquals(f.output().toArray(), y, 0f);
            f.output().close();
            f.saved().close();
        }
        h.stage().tell(new StageActor.Backward(pos, TensorPayload.of(random(B * T, c, 2))));
        StageActor.Backward back = h.prev().expectMessageClass(StageActor.Backward.class);
        assertEquals(pos, back.pos());
        assertArrayEquals(new int[] {B * T, c}, back.gradient().shape());
        back.gradient().discard();
        Coordinator.Report done = (Coordinator.Report) h.coordinator().receiveMessage();
        assertEquals(Coordinator.Report.Kind.PASS_DONE, done.kind());
        assertEquals(1, done.stage());
        assertTrue(done.busyNanos() > 0);
        kit.stop(h.stage());
    }

    @Test
    void freezingIsAcknowledged() {
        Harness h = block("block-freeze");
        h.stage().tell(new StageActor.SetTrainable(3, false));
        Coordinator.Report r = (Coordinator.Report) h.coordinator().receiveMessage();
        assertEquals(Coordinator.Report.Kind.TRAINABLE_SET, r.kind());
        assertEquals(3, r.step());
        h.coordinator().awaitAssert(() -> {
            assertFalse(h.block().trainable());
            return null;
        });
        kit.stop(h.stage());
    }

    @Test
    void aFailureNamesStageStepAndMicrobatch() {
        Harness h = block("block-bad");
        Position pos = new Position(4, 0, 1, B, T, false, 1f);
        // One column too many: the block's first norm rejects it.
        h.stage().tell(new StageActor.Forward(pos, TensorPayload.of(random(B * T, PipelineEquivalenceTest.LLAMA.hidden() + 1, 3))));
        Coordinator.Report r = (Coordinator.Report) h.coordinator().receiveMessage(Duration.ofSeconds(10));
        assertEquals(Coordinator.Report.Kind.FAILED, r.kind());
        assertTrue(r.reason().contains("block-bad (stage 1), step 4 microbatch 0/1"), r.reason());
        h.next().expectNoMessage(Duration.ofMillis(100));
        kit.stop(h.stage());
    }

    static Batch batch() {
        return new Batch(new int[] {1, 2, 3}, new int[] {2, 3, 4}, 1, 3);
    }

    @Test
    void coordinatorStartsAPassAndClosesTheStepWhenEveryStageReported() {
        List<TestProbe<StageActor.Command>> stages = List.of(kit.createTestProbe(), kit.createTestProbe(), kit.createTestProbe());
        ActorRef<Coordinator.Command> c = kit.spawn(Coordinator.create(new Placement(1, new int[] {0, 0, 0}), Clipping.NONE,
                null, Duration.ofSeconds(30), 0));
        c.tell(new Coordinator.Attach(stages.stream().map(TestProbe::getRef).toList()));
        TestProbe<Coordinator.StepResult> reply = kit.createTestProbe();
        c.tell(new Coordinator.RunStep(List.of(batch()), reply.getRef()));
        StageActor.Tokens tokens = stages.get(0).expectMessageClass(StageActor.Tokens.class);
        assertArrayEquals(new int[] {1, 2, 3}, tokens.ids());
        StageActor.Targets targets = stages.get(2).expectMessageClass(StageActor.Targets.class);
        assertArrayEquals(new int[] {2, 3, 4}, targets.ids());
        stages.get(1).expectNoMessage(Duration.ofMillis(50));
        Position pos = tokens.pos();
        c.tell(Coordinator.Report.loss(2, pos, 1.5));
        for (int s = 0; s < 3; s++) c.tell(Coordinator.Report.passDone(s, pos, 0, s, 1000));
        Coordinator.StepResult r = reply.receiveMessage();
        assertTrue(r.ok(), r.error());
        assertEquals(1.5, r.loss());
        assertEquals(2, r.staleness());
    }

    /**
     * The coordinator applies LISA's draw by SetTrainable messages, acknowledged before the step starts — at a
     * redraw (step 0), and at the first step of a coordinator resumed between redraws (step 7, period 5).
     */
    @ParameterizedTest(name = "first step {0}")
    @ValueSource(ints = {0, 7})
    void coordinatorFreezesAndUnfreezesBlocksBeforeTheStep(int first) {
        List<TestProbe<StageActor.Command>> stages = List.of(kit.createTestProbe(), kit.createTestProbe(), kit.createTestProbe(),
                kit.createTestProbe());
        LisaPolicy lisa = new LisaPolicy(2, 1, 5, 9);
        ActorRef<Coordinator.Command> c = kit.spawn(Coordinator.create(new Placement(1, new int[] {0, 0, 0, 0}), Clipping.NONE,
                lisa, Duration.ofSeconds(30), first));
        c.tell(new Coordinator.Attach(stages.stream().map(TestProbe::getRef).toList()));
        TestProbe<Coordinator.StepResult> reply = kit.createTestProbe();
        c.tell(new Coordinator.RunStep(List.of(batch()), reply.getRef()));
        int active = lisa.activeBlocks(first)[0];
        for (int b = 0; b < 2; b++) {
            StageActor.SetTrainable st = stages.get(b + 1).expectMessageClass(StageActor.SetTrainable.class);
            assertEquals(first, st.step());
            assertEquals(b == active, st.trainable());
        }
        stages.get(0).expectNoMessage(Duration.ofMillis(50));
        c.tell(Coordinator.Report.trainableSet(1, first));
        c.tell(Coordinator.Report.trainableSet(2, first));
        assertEquals(first, stages.get(0).expectMessageClass(StageActor.Tokens.class).pos().step());
    }

    @Test
    void aStepThatDoesNotFinishTimesOutWithAnError() {
        List<TestProbe<StageActor.Command>> stages = List.of(kit.createTestProbe(), kit.createTestProbe(), kit.createTestProbe());
        ActorRef<Coordinator.Command> c = kit.spawn(Coordinator.create(new Placement(1, new int[] {0, 0, 0}), Clipping.NONE,
                null, Duration.ofMillis(300), 0));
        c.tell(new Coordinator.Attach(stages.stream().map(TestProbe::getRef).toList()));
        TestProbe<Coordinator.StepResult> reply = kit.createTestProbe();
        c.tell(new Coordinator.RunStep(List.of(batch()), reply.getRef()));
        Coordinator.StepResult r = reply.receiveMessage(Duration.ofSeconds(5));
        assertFalse(r.ok());
        assertTrue(r.error().contains("timed out") && r.error().contains("3 stage report(s) outstanding"), r.error());
        c.tell(new Coordinator.RunStep(List.of(batch()), reply.getRef()));
        assertTrue(reply.receiveMessage().error().contains("stopped after an earlier failure"));
    }
}
