package relay.transport;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.NotSerializableException;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import relay.stages.memory.Category;
import relay.stages.tensor.Tensor;
import relay.stages.tensor.cpu.CpuDevice;

/**
 * The serializer and tensor payloads: tensors of every size cross as exact little-endian float32 bytes, the
 * sender's tensor is freed when it leaves, and bytes that are not a message (an unknown manifest, a cut
 * payload, a tensor whose bytes do not fit its shape) are refused naming what they are.
 */
class RelaySerializerTest {
    static ActorSystem<Void> system;
    static RelaySerializer serializer;
    CpuDevice device;

    @BeforeAll
    static void start() {
        system = ActorSystem.create(Behaviors.empty(), "serializer-test");
        serializer = new RelaySerializer((ExtendedActorSystem) Adapter.toClassic(system));
    }

    @AfterAll
    static void stop() {
        system.terminate();
    }

    @BeforeEach
    void open() {
        device = new CpuDevice("cpu-wire", 1);
    }

    @AfterEach
    void close() {
        assertEquals(0, device.memory().currentTotal(), "every tensor freed");
        device.close();
    }

    private Tensor tensor(int rows, int cols, long seed) {
        float[] v = new float[rows * cols];
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < v.length; i++) v[i] = (float) r.nextGaussian();
        return device.allocate(Category.ACTIVATIONS, rows, cols).copyFrom(v);
    }

    private EchoCodecs.Echo roundTrip(EchoCodecs.Echo m) throws NotSerializableException {
        String manifest = serializer.manifest(m);
        return (EchoCodecs.Echo) serializer.fromBinary(serializer.toBinary(m), manifest);
    }

    @Test
    void aLargeTensorCrossesExactlyAndTheSendersCopyIsFreed() throws Exception {
        Tensor t = tensor(1024, 4096, 1);
        float[] sent = t.toArray();
        EchoCodecs.Echo back = roundTrip(new EchoCodecs.Echo(TensorPayload.of(t)));
        assertEquals(0, device.memory().current(Category.ACTIVATIONS), "the sender's tensor is freed once it is bytes");
        assertArrayEquals(new int[] {1024, 4096}, back.tensor().shape());
        try (Tensor got = back.tensor().materialize(device, Category.COMMUNICATION)) {
            assertArrayEquals(sent, got.toArray(), 0f);
            assertEquals(sent.length * 4L, device.memory().current(Category.COMMUNICATION), "received bytes are counted as communication");
        }
        assertThrows(IllegalStateException.class, () -> back.tensor().materialize(device, Category.ACTIVATIONS), "taken once only");
    }

    @Test
    void anEmptyTensorCrosses() throws Exception {
        EchoCodecs.Echo back = roundTrip(new EchoCodecs.Echo(TensorPayload.of(device.allocate(Category.ACTIVATIONS, 0, 16))));
        assertArrayEquals(new int[] {0, 16}, back.tensor().shape());
        try (Tensor got = back.tensor().materialize(device, Category.ACTIVATIONS)) {
            assertEquals(0, got.size());
        }
    }

    /** Received values wait, counted as communication in this JVM's in-flight ledger, until a device takes them. */
    @Test
    void receivedBytesAreCountedInFlightUntilTaken() throws Exception {
        long before = TensorPayload.inFlight().current(Category.COMMUNICATION);
        EchoCodecs.Echo back = roundTrip(new EchoCodecs.Echo(TensorPayload.of(tensor(64, 32, 5))));
        assertEquals(before + 64 * 32 * 4, TensorPayload.inFlight().current(Category.COMMUNICATION));
        back.tensor().discard();
        assertEquals(before, TensorPayload.inFlight().current(Category.COMMUNICATION));
    }

    /** Artery's path writes into and reads from a frame buffer directly: the same bytes as the array path. */
    @Test
    void theFrameBufferPathWritesTheSameBytes() throws Exception {
        Tensor t = tensor(16, 8, 6);
        float[] sent = t.toArray();
        EchoCodecs.Echo m = new EchoCodecs.Echo(TensorPayload.of(t));
        java.nio.ByteBuffer frame = java.nio.ByteBuffer.allocateDirect(4096);
        serializer.toBinary(m, frame);
        frame.flip();
        EchoCodecs.Echo back = (EchoCodecs.Echo) serializer.fromBinary(frame, "echo");
        try (Tensor got = back.tensor().materialize(device, Category.ACTIVATIONS)) {
            assertArrayEquals(sent, got.toArray(), 0f);
        }
    }

    @Test
    void withinOneJvmTheTensorItselfIsHandedOver() {
        Tensor t = tensor(3, 5, 2);
        TensorPayload p = TensorPayload.of(t);
        Tensor got = p.materialize(device, Category.ACTIVATIONS);
        assertTrue(got == t, "same device and category: no copy");
        got.close();
        try (Tensor owner = tensor(2, 2, 3)) {
            assertThrows(IllegalArgumentException.class, () -> TensorPayload.of(owner.rowRange(0, 1)), "a view owns nothing");
        }
    }

    @Test
    void bytesThatAreNotAMessageAreRefusedNamingThem() throws Exception {
        NotSerializableException unknown = assertThrows(NotSerializableException.class, () -> serializer.fromBinary(new byte[] {1, 2}, "zz"));
        assertEquals("unknown message manifest 'zz'", unknown.getMessage());
        byte[] whole = serializer.toBinary(new EchoCodecs.Echo(TensorPayload.of(tensor(8, 8, 4))));
        byte[] cut = Arrays.copyOf(whole, whole.length / 2);
        NotSerializableException truncated = assertThrows(NotSerializableException.class, () -> serializer.fromBinary(cut, "echo"));
        assertTrue(truncated.getMessage().startsWith("malformed 'echo' message of " + cut.length + " bytes"), truncated.getMessage());
        java.nio.ByteBuffer misfit = java.nio.ByteBuffer.allocate(64);
        Frames.writeHeader(relay.transport.proto.TensorData.newBuilder().addShape(4).addShape(4).build(), misfit);
        misfit.put(new byte[12]).flip();
        NotSerializableException shape = assertThrows(NotSerializableException.class, () -> serializer.fromBinary(misfit, "echo"));
        assertTrue(shape.getMessage().contains("tensor of shape [4, 4] needs 64 bytes, message carries 12"), shape.getMessage());
        assertThrows(IllegalArgumentException.class, () -> serializer.manifest("not a wire message"));
    }
}
