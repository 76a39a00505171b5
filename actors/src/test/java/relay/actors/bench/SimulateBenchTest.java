package relay.actors.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import relay.actors.PipelineSchedule;
import relay.actors.UpdateMode;

/**
 * The real actors on simulated devices: the protocol's message count, and — a wall-clock check, run with
 * {@code -Pwallclock}, since a loaded machine stretches the paced stages — the schedule's bubble.
 */
@Timeout(120)
class SimulateBenchTest {

    @Test
    void theCoordinatorHandlesThreeMessagesAMicrobatchAndOneAStage() {
        int stages = 18, devices = 4, microbatches = 8;
        SimulateBench.Result r = SimulateBench.run(stages, devices, microbatches, PipelineSchedule.ONE_F_ONE_B, UpdateMode.EAGER, 1.0, 1, 0);
        // The step request and its answer; tokens and targets of each microbatch; each microbatch's loss; each stage's share.
        assertEquals(1 + 2L * microbatches + microbatches + stages + 1, r.coordinatorMessages());
        assertEquals(1.0, r.blockForwardMillis(), 1e-4);
        assertTrue(r.busiestActorLoad() > 0 && r.busiestActorLoad() < 1, "load " + r.busiestActorLoad());
    }

    @Test
    @Tag("wallclock")
    void theBubbleIsTheSchedules() {
        int stages = 18, devices = 4, microbatches = 8;
        SimulateBench.Result r = SimulateBench.run(stages, devices, microbatches, PipelineSchedule.ONE_F_ONE_B, UpdateMode.EAGER, 5.0, 2, 0);
        System.out.printf("steps %s s, predicted %.3f s, bubble %.3f vs %.3f, coordinator %d messages, load %.4f, busiest %s %.3f%n",
                java.util.Arrays.toString(r.stepSeconds()), r.predictedStepSeconds(), r.bubbleMeasured(), r.bubblePredicted(),
                r.coordinatorMessages(), r.coordinatorLoad(), r.busiestActor(), r.busiestActorLoad());
        assertEquals(r.bubblePredicted(), r.bubbleMeasured(), 0.1);
    }

    @Test
    void aLisaDrawEveryStepAddsAMessageToEachBlockAndItsAnswer() {
        int stages = 10, microbatches = 4;
        SimulateBench.Result r = SimulateBench.run(stages, 2, microbatches, PipelineSchedule.ONE_F_ONE_B, UpdateMode.EAGER, 1.0, 1, 2);
        assertEquals(1 + 3L * microbatches + stages + 1 + 2L * (stages - 2), r.coordinatorMessages());
    }
}
