package relay.actors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.NotSerializableException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializer;
import org.apache.pekko.serialization.SerializerWithStringManifest;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import relay.optimizers.Method;
import relay.stages.io.SafeTensors;
import relay.stages.memory.Category;
import relay.stages.model.Family;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.train.Batch;
import relay.transport.RelaySerializer;
import relay.transport.TensorPayload;
import relay.transport.WireMessage;

/**
 * Every message of every protocol round-trips through Pekko's serialization as Relay's Protobuf: a sample of
 * each record a sealed protocol permits (the test fails if one has none), decoded and encoded again to the
 * same bytes, large and empty tensors among them. A payload cut short and an unknown manifest are refused.
 */
class WireRoundTripTest {
    static ActorTestKit kit;
    static CpuDevice device;

    @BeforeAll
    static void start() {
        kit = ActorTestKit.create();
        device = new CpuDevice("cpu-wire", 1);
    }

    @AfterAll
    static void stop() {
        kit.shutdownTestKit();
        device.close();
    }

    static final Position POS = new Position(7, Pass.NORM, 12, 1, 4, 2, 6, 0.5f);

    static TensorPayload tensor(int rows, int cols) {
        float[] v = new float[rows * cols];
        for (int i = 0; i < v.length; i++) v[i] = (float) Math.sin(i);
        return TensorPayload.of(device.allocate(Category.COMMUNICATION, rows, cols).copyFrom(v));
    }

    static TensorPayload empty() {
        return TensorPayload.of(device.allocate(Category.COMMUNICATION, 0, 3));
    }

    /** One of each message, every record of every protocol. */
    static List<WireMessage> samples() {
        TestProbe<StageCommand> stage = kit.createTestProbe();
        TestProbe<StageEvent> events = kit.createTestProbe();
        TestProbe<StageHost.Command> host = kit.createTestProbe();
        TestProbe<Coordinator.StepResult> results = kit.createTestProbe();
        TestProbe<Coordinator.Gathered> gathered = kit.createTestProbe();
        TestProbe<StageHost.DeviceMemory> memory = kit.createTestProbe();
        TestProbe<StageHost.Pong> pong = kit.createTestProbe();
        Map<String, float[]> state = Map.of("model.norm.weight/m", new float[] {1, 2}, "model.norm.weight/steps", new float[] {3});
        Placement placement = new Placement(2, new int[] {0, 0, 0, 1, 1, 1}, 3);
        StageSpec spec = new StageSpec(3, 2, PipelineEquivalenceTest.LLAMA, 5, Path.of("/models/m"), placement,
                PipelineConfig.defaults(Method.ADALOMO, 0.02f).with(UpdateMode.EXACT, PipelineSchedule.GPIPE).withTraceSteps(9).withRecompute(true), 1234);
        List<TensorPart> weights = TensorPart.split(List.of(new SafeTensors.Tensor32("w", new int[] {2, 2}, new float[] {1, 2, 3, 4}),
                new SafeTensors.Tensor32("e", new int[] {0}, new float[0])), 3).get(1);
        Batch batch = new Batch(new int[] {1, 2, 3}, new int[] {2, 3, 4}, 1, 3);
        Batch packed = new Batch(new int[] {1, 2, 3, 4}, new int[] {2, Batch.IGNORED, 4, Batch.IGNORED}, 1, 4, new int[] {0, 1, 0, 1});
        Map<Category, Long> peaks = new EnumMap<>(Category.class);
        peaks.put(Category.ACTIVATIONS, 100L);
        peaks.put(Category.GRADIENTS, 0L);
        StageEvent.Failed failed = new StageEvent.Failed(2, null, StageEvent.Failure.INPUT, "config.json does not fit");
        return List.of(
                new StageCommand.Connect(List.of(stage.getRef(), stage.getRef()), List.of("", "10.0.0.2:41234")),
                new StageCommand.LeftDevice(POS, true),
                new StageCommand.Tokens(POS, new int[] {5, 6, 7}),
                new StageCommand.Tokens(POS, new int[] {5, 6, 7, 8}, new int[] {0, 1, 0, 1}),
                new StageCommand.Targets(POS, new int[] {}, 0),
                new StageCommand.Targets(POS, new int[] {3, -100, 5}, 7),
                new StageCommand.Forward(POS, tensor(512, 1024)),
                new StageCommand.Forward(POS, tensor(4, 8), new int[] {0, 1, 2, 0}),
                new StageCommand.Backward(POS, empty()),
                new StageCommand.SetTrainable(3, true),
                new StageCommand.Redraw(8, 6, true),
                new StageCommand.TiedGradient(3, 8, tensor(4, 4)),
                new StageCommand.TiedWeights(3, 8, tensor(4, 4)),
                new StageCommand.ReplicaGradient(POS, "model.layers.1.mlp.up_proj.weight", 1, 16, tensor(4, 8)),
                new StageCommand.ReplicaReady(POS, "lm_head.weight"),
                new StageCommand.ReplicaWeights(POS, "model.norm.weight", 0, tensor(1, 16)),
                new StageCommand.CollectWeights(),
                new StageCommand.CollectState(),
                new StageCommand.RestoreState(TensorPart.split(state, 100).get(0), true),
                new StageCommand.CollectTrace(),
                new StageCommand.WriteShard(400, "/runs/r/checkpoints/step-400"),
                new StageCommand.TakeSnapshot(12, 11, List.of(host.getRef(), host.getRef()), List.of("", "10.0.0.2:41234")),
                new StageCommand.RestoreSnapshot(2, false, weights, false),
                new StageCommand.RestoreSnapshot(1, true, TensorPart.split(state, 100).get(0), true),
                new StageEvent.Ready(1, stage.getRef(), List.of("a", "b"), "10.0.0.3:40001", 6),
                new StageEvent.Connected(4),
                new StageEvent.Loss(5, POS, 2.5),
                new StageEvent.PassDone(2, POS, 0.25, 3, 1000),
                new StageEvent.TrainableSet(1, 9, false),
                new StageEvent.Redrawn(2, 8),
                failed,
                new StageEvent.Failed(1, POS, StageEvent.Failure.DIVERGED, "loss is NaN"),
                new StageEvent.Weights(0, weights, false),
                new StageEvent.OptimizerState(3, TensorPart.split(state, 100).get(0), true),
                new StageEvent.Restored(3, Set.of("x/m"), null),
                new StageEvent.Trace(2, List.of(new TraceEvent("forward", "block-1", 0, 2, 10, 5, 1, 0))),
                new StageEvent.ShardTaken(2, 400),
                new StageEvent.SnapshotTaken(2, 12, true),
                new StageEvent.SnapshotHeld(3, 12, host.getRef()),
                new StageEvent.ShardWritten(2, 400, List.of(new relay.stages.io.CheckpointShard.File("model-block-1.safetensors", "ab01",
                        List.of("model.layers.1.mlp.up_proj.weight")), new relay.stages.io.CheckpointShard.File("optimizer-block-1.safetensors",
                        "cd02", List.of())), null),
                new StageEvent.ShardWritten(3, 400, List.of(), "disk full"),
                new Coordinator.Start(List.of(spec), List.of(host.getRef()), gathered.getRef()),
                new Coordinator.RunStep(List.of(batch, batch, packed), results.getRef()),
                new Coordinator.RunStep(List.of(batch), 12, results.getRef()),
                new Coordinator.Evaluate(List.of(batch), results.getRef()),
                new Coordinator.Collect(Coordinator.What.OPTIMIZER_STATE, gathered.getRef()),
                new Coordinator.Restore(state, gathered.getRef()),
                new Coordinator.WriteShards(400, "/runs/r/checkpoints/step-400", gathered.getRef()),
                new Coordinator.AwaitShards(400, gathered.getRef()),
                new Coordinator.FindSnapshot(gathered.getRef()),
                new Coordinator.RestoreSnapshot(List.of(new StageEvent.SnapshotHeld(0, 12, host.getRef()),
                        new StageEvent.SnapshotHeld(1, 12, host.getRef())), gathered.getRef()),
                new Coordinator.StepResult(4, 1.5, new double[] {1, 2}, 10, new long[] {3, 4}, 0.1, 2, Double.NaN, 11, 5000, null, null),
                new Coordinator.StepResult(4, Double.NaN, new double[0], 0, new long[0], Double.NaN, 0, Double.NaN, 3, 700, "step 4 failed",
                        StageEvent.Failure.FAULT),
                new Coordinator.Gathered(List.of(new StageEvent.Connected(0), new StageEvent.Restored(1, Set.of(), "bad"),
                        new StageEvent.Weights(2, weights, true)), null, null),
                new Coordinator.Gathered(List.of(), "no", StageEvent.Failure.INPUT),
                new StageHost.Spawn(spec, events.getRef(), 3),
                // Every LLaMA-family option crosses too: Qwen2's window from layer 2, yarn with each of its numbers, Llama's biases.
                new StageHost.Spawn(withModel(spec, new ModelConfig(Family.LLAMA, 40, 16, 4, 4, 2, 4, 32, 16, 1e-5f, 1e6, true,
                        ModelConfig.Options.plain(Family.LLAMA).withModelType("qwen2").withWindow(8, 2).withRope(
                                new ModelConfig.Rope("yarn", 4, 0, 0, 8, 1.1, 16, 2, 0.7, 1, false), ModelConfig.RopeSpelling.ROPE_SCALING_TYPE))),
                        events.getRef(), 1),
                new StageHost.Spawn(withModel(spec, new ModelConfig(Family.LLAMA, 40, 16, 4, 4, 2, 4, 32, 16, 1e-5f, 5e5, false,
                        ModelConfig.Options.plain(Family.LLAMA).withBiases(true, true).withRope(ModelConfig.Rope.llama3(8, 1, 4, 8),
                                ModelConfig.RopeSpelling.ROPE_PARAMETERS))), events.getRef(), 2),
                new StageHost.ReportMemory(memory.getRef()),
                new StageHost.StopStages(memory.getRef()),
                new StageHost.Ping(pong.getRef()),
                new StageHost.Pong(),
                new StageHost.Refuse("index 2 is held by node 2 (127.0.0.1:41234)"),
                new StageHost.HoldSnapshot(3, 12, 11, true, TensorPart.split(state, 100).get(0), true, events.getRef()),
                new StageHost.HoldSnapshot(3, 12, -1, false, weights, false, events.getRef()),
                new StageHost.SendSnapshot(5, 12, List.of("model.embed_tokens.weight"), stage.getRef(), "10.0.0.2:41234", 2, events.getRef()),
                new StageHost.DeviceMemory(Map.of(0, peaks)));
    }

    private static SerializerWithStringManifest serializerOf(Object m) {
        Serialization s = SerializationExtension.get(Adapter.toClassic(kit.system()));
        Serializer serializer = s.findSerializerFor(m);
        assertTrue(serializer instanceof RelaySerializer, m.getClass() + " is serialized by " + serializer);
        return (SerializerWithStringManifest) serializer;
    }

    @Test
    void everyMessageOfEveryProtocolRoundTripsToTheSameBytes() throws Exception {
        List<WireMessage> samples = samples();
        Set<Class<?>> covered = new HashSet<>();
        samples.forEach(m -> covered.add(m.getClass()));
        for (Class<?> protocol : List.of(StageCommand.class, StageEvent.class, Coordinator.Command.class, StageHost.Command.class)) {
            for (Class<?> c : protocol.getPermittedSubclasses()) assertTrue(covered.contains(c), "no sample of " + c.getName());
        }
        for (WireMessage m : samples) {
            SerializerWithStringManifest s = serializerOf(m);
            String manifest = s.manifest(m);
            byte[] bytes = s.toBinary(m);
            Object back = s.fromBinary(bytes, manifest);
            assertEquals(m.getClass(), back.getClass());
            assertArrayEquals(bytes, s.toBinary(back), m.getClass().getSimpleName() + " encodes to the same bytes after a round trip");
        }
        assertEquals(0, device.memory().current(Category.COMMUNICATION), "every sent tensor was freed when it became bytes");
    }

    @Test
    void aLargeActivationArrivesExactly() throws Exception {
        TensorPayload big = tensor(2048, 768);
        float[] sent;
        try (var t = big.materialize(device, Category.ACTIVATIONS)) {
            sent = t.toArray();
            StageCommand.Forward f = new StageCommand.Forward(POS, TensorPayload.of(device.allocate(Category.ACTIVATIONS, 2048, 768).copyFrom(sent)));
            SerializerWithStringManifest s = serializerOf(f);
            StageCommand.Forward back = (StageCommand.Forward) s.fromBinary(s.toBinary(f), s.manifest(f));
            assertEquals(POS, back.pos());
            try (var got = back.activation().materialize(device, Category.ACTIVATIONS)) {
                assertArrayEquals(sent, got.toArray(), 0f);
            }
        }
    }

    @Test
    void cutPayloadsAndUnknownManifestsAreRefusedNamingThem() {
        StageCommand.Tokens m = new StageCommand.Tokens(POS, new int[] {1, 2, 3, 4, 5, 6, 7, 8});
        SerializerWithStringManifest s = serializerOf(m);
        byte[] bytes = s.toBinary(m);
        NotSerializableException cut = assertThrows(NotSerializableException.class,
                () -> s.fromBinary(Arrays.copyOf(bytes, bytes.length - 3), "s"));
        assertTrue(cut.getMessage().startsWith("malformed 's' message of " + (bytes.length - 3) + " bytes"), cut.getMessage());
        NotSerializableException unknown = assertThrows(NotSerializableException.class, () -> s.fromBinary(bytes, "q"));
        assertEquals("unknown message manifest 'q'", unknown.getMessage());
        NotSerializableException empty = assertThrows(NotSerializableException.class, () -> s.fromBinary(new byte[] {0}, "e"));
        assertTrue(empty.getMessage().contains("a stage event without an event"), empty.getMessage());
    }

    /** Position ids of packed examples arrive as sent, and none stay none (byte equality alone would not see them dropped). */
    @Test
    void positionIdsArriveAsSent() throws Exception {
        int[] ids = {0, 1, 2, 0, 1, 0};
        List<StageCommand> sent = List.of(new StageCommand.Tokens(POS, new int[] {4, 5, 6, 7, 8, 9}, ids),
                new StageCommand.Forward(POS, tensor(6, 2), ids), new StageCommand.Tokens(POS, new int[] {4}),
                new StageCommand.Forward(POS, tensor(1, 2)));
        for (StageCommand m : sent) {
            SerializerWithStringManifest s = serializerOf(m);
            Object back = s.fromBinary(s.toBinary(m), s.manifest(m));
            int[] want = m instanceof StageCommand.Tokens t ? t.positions() : ((StageCommand.Forward) m).positions();
            int[] got = back instanceof StageCommand.Tokens t ? t.positions() : ((StageCommand.Forward) back).positions();
            assertArrayEquals(want, got);
            if (back instanceof StageCommand.Forward f) f.activation().discard();
        }
        Batch b = new Batch(new int[] {1, 2, 3}, new int[] {2, 3, 4}, 1, 3, new int[] {0, 0, 1});
        assertArrayEquals(b.positions(), Wire.batch(Wire.batch(b)).positions());
        assertEquals(null, Wire.batch(Wire.batch(new Batch(new int[] {1}, new int[] {2}, 1, 1))).positions());
    }

    /** Java serializable, and nothing else: Pekko would fall back to Java serialization for it, which is off. */
    record JavaOnly(String text) implements java.io.Serializable {}

    @Test
    void aMessageThatIsNotProtobufIsRefused() {
        Serialization serialization = SerializationExtension.get(Adapter.toClassic(kit.system()));
        var javaOnly = serialization.serialize(new JavaOnly("hello"));
        assertTrue(javaOnly.isFailure(), "a Java-serializable message was serialized");
        assertTrue(javaOnly.failed().get().getMessage().contains("Java serialization"), javaOnly.failed().get().getMessage());
        var plain = serialization.serialize(new Object());
        assertTrue(plain.isFailure(), "a message with no serializer was serialized");
    }

    /** A model's shape comes back equal, every LLaMA-family option with it (byte equality alone would not see a dropped field). */
    @Test
    void modelShapesComeBackEqual() {
        ModelConfig.Options plain = ModelConfig.Options.plain(Family.LLAMA);
        List<ModelConfig> shapes = List.of(PipelineEquivalenceTest.LLAMA, PipelineEquivalenceTest.GPT2,
                new ModelConfig(Family.LLAMA, 40, 16, 4, 4, 2, 4, 32, 16, 1e-5f, 1e6, true, plain.withModelType("qwen2").withWindow(8, 2)
                        .withRope(new ModelConfig.Rope("yarn", 4, 0, 0, 8, 1.1, 16, 2, 0.7, 1, false), ModelConfig.RopeSpelling.ROPE_SCALING_TYPE)),
                new ModelConfig(Family.LLAMA, 40, 16, 4, 4, 2, 4, 32, 16, 1e-5f, 5e5, false, plain.withBiases(true, true)
                        .withRope(ModelConfig.Rope.llama3(8, 1, 4, 8), ModelConfig.RopeSpelling.ROPE_PARAMETERS)),
                new ModelConfig(Family.LLAMA, 40, 16, 4, 4, 2, 4, 32, 16, 1e-5f, 1e4, false, plain.withModelType("mistral").withWindow(3, 0)
                        .withRope(ModelConfig.Rope.dynamic(2), ModelConfig.RopeSpelling.ROPE_SCALING_ROPE_TYPE)));
        for (ModelConfig c : shapes) assertEquals(c, Wire.model(Wire.model(c)));
    }

    static StageSpec withModel(StageSpec s, ModelConfig model) {
        return new StageSpec(s.stage(), s.replica(), model, s.seed(), s.weights(), s.placement(), s.config(), s.traceEpochMicros());
    }
}
