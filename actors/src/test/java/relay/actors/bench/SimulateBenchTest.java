package relay.actors.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import relay.actors.PipelineSchedule;

/** The real actors on simulated devices: the protocol's message count, and the schedule's bubble where the simulation paces the stages. */
@Timeout(120)
class SimulateBenchTest {

    @Test
    void theCoordinatorHandlesThreeMessagesAMicrobatchAndOneAStageAndTheBubbleIsTheSchedules() {
        int stages = 18, devices = 4, microbatches = 8;
        SimulateBench.Result r = SimulateBench.run(stages, devices, microbatches, PipelineSchedule.ONE_F_ONE_B, 5.0, 2, 0);
        System.out.printf("steps %s s, predicted %.3f s, bubble %.3f vs %.3f, coordinator %d messages, load %.4f, busiest %s %.3f%n",
                java.util.Arrays.toString(r.stepSeconds()), r.predictedStepSeconds(), r.bubbleMeasured(), r.bubblePredicted(),
                r.coordinatorMessages(), r.coordinatorLoad(), r.busiestActor(), r.busiestActorLoad());
        // The step request and its answer; tokens and targets of each microbatch; each microbatch's loss; each stage's share.
        assertEquals(1 + 2L * microbatches + microbatches + stages + 1, r.coordinatorMessages());
        assertEquals(5.0, r.blockForwardMillis(), 1e-6);
        assertEquals(r.bubblePredicted(), r.bubbleMeasured(), 0.1);
        assertTrue(r.busiestActorLoad() > 0 && r.busiestActorLoad() < 1, "load " + r.busiestActorLoad());
    }

    @Test
    void aLisaDrawEveryStepAddsAMessageToEachBlockAndItsAnswer() {
        int stages = 10, microbatches = 4;
        SimulateBench.Result r = SimulateBench.run(stages, 2, microbatches, PipelineSchedule.ONE_F_ONE_B, 1.0, 1, 2);
        assertEquals(1 + 3L * microbatches + stages + 1 + 2L * (stages - 2), r.coordinatorMessages());
    }
}
