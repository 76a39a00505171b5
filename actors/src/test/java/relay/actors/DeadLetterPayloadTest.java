package relay.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.Test;
import relay.stages.tensor.DType;
import relay.transport.TensorPayload;

/**
 * A tensor received from another node sits in one of the channel's few receive buffers until its stage takes it; one
 * sent to a stage that has stopped (a failed pipeline's activations still in flight) is freed and its buffer given
 * back, or after a few such failures the connection would wait for buffers forever.
 */
class DeadLetterPayloadTest {
    @Test
    void aTensorSentToAStoppedStageGivesItsReceiveBufferBack() throws Exception {
        ActorSystem<Nodes.Local> system = Nodes.system(ConfigFactory.empty());
        try {
            CountDownLatch givenBack = new CountDownLatch(1);
            TensorPayload[] received = new TensorPayload[1];
            ByteBuffer frame = ByteBuffer.allocate(4 * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
            assertTrue(TensorPayload.lending(new TensorPayload.Loan(() -> { }, givenBack::countDown),
                    () -> received[0] = TensorPayload.readFrom(new int[] {2, 2}, DType.F32, frame)), "the payload keeps the lent buffer");
            long inFlight = TensorPayload.inFlight().currentTotal();
            ActorRef<StageCommand> stopped = Nodes.spawnIn(system, Behaviors.stopped(), "stopped-stage");
            stopped.tell(new StageCommand.Backward(WireRoundTripTest.POS, received[0]));
            assertTrue(givenBack.await(10, TimeUnit.SECONDS), "the buffer went back to the channel");
            assertEquals(inFlight - 4L * Float.BYTES, TensorPayload.inFlight().currentTotal(), "and left the in-flight ledger");
        } finally {
            system.terminate();
            system.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
        }
    }
}
