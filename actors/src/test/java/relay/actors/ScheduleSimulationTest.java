package relay.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

/**
 * The simulated schedules against the known results for equal devices: 1F1B and GPipe idle (p − 1)(F + B)
 * of m(F + B) + (p − 1)(F + B), the closed form (p − 1)/(m + p − 1); ZB-H1 with F = B = W idles
 * (p − 1)(F + B − W) (Qi et al., 2024, section 3), a third of 1F1B's bubble time.
 */
class ScheduleSimulationTest {

    private static ScheduleSimulation.DeviceCosts[] equal(int p, double f, double b, double w) {
        ScheduleSimulation.DeviceCosts[] c = new ScheduleSimulation.DeviceCosts[p];
        Arrays.fill(c, new ScheduleSimulation.DeviceCosts(f, b, w));
        return c;
    }

    @Test
    void unsplitSchedulesMatchTheClosedForm() {
        for (PipelineSchedule s : new PipelineSchedule[] {PipelineSchedule.GPIPE, PipelineSchedule.ONE_F_ONE_B}) {
            for (int p = 1; p <= 8; p++) {
                for (int m = 1; m <= 16; m++) {
                    ScheduleSimulation.Outcome o = ScheduleSimulation.run(s, equal(p, 1, 2, 0), m);
                    assertEquals(PipelineSchedule.theoreticalBubble(p, m), o.bubble(), 1e-12, s + " p=" + p + " m=" + m);
                    assertEquals(3.0 * (m + p - 1), o.stepTime(), 1e-12);
                }
            }
        }
    }

    @Test
    void zbH1IdlesAThirdOfOneFOneBWithEqualCosts() {
        for (int p = 1; p <= 8; p++) {
            for (int m = p; m <= 16; m++) {
                ScheduleSimulation.Outcome zb = ScheduleSimulation.run(PipelineSchedule.ZB_H1, equal(p, 1, 1, 1), m);
                assertEquals(3.0 * m + (p - 1), zb.stepTime(), 1e-12, "p=" + p + " m=" + m);
                assertEquals((p - 1.0) / (3.0 * m + p - 1), zb.bubble(), 1e-12);
            }
        }
    }

    @Test
    void theSlowestDeviceSetsThePace() {
        ScheduleSimulation.DeviceCosts[] c = {new ScheduleSimulation.DeviceCosts(1, 2, 0), new ScheduleSimulation.DeviceCosts(2, 4, 0)};
        ScheduleSimulation.Outcome o = ScheduleSimulation.run(PipelineSchedule.ONE_F_ONE_B, c, 8);
        // Device 1 works 8 × 6 with no wait but the first forward of device 0: 1 + 48.
        assertEquals(49 + 2, o.stepTime(), 1e-12, "then device 0's last backward: 2");
        assertTrue(o.bubble() > PipelineSchedule.theoreticalBubble(2, 8));
    }

    /** Eager replicas: a device waits for its exchange after each backward, whose gradient has already gone on. */
    @Test
    void aSettleHoldsTheDeviceNotItsMessage() {
        ScheduleSimulation.DeviceCosts c = new ScheduleSimulation.DeviceCosts(1, 1, 0, 0.5);
        ScheduleSimulation.Outcome o = ScheduleSimulation.run(PipelineSchedule.ONE_F_ONE_B, new ScheduleSimulation.DeviceCosts[] {c, c}, 2);
        // Device 1: F0 1–2, B0 2–3 (sent at 3) and its settle to 3.5, F1 3.5–4.5, B1 4.5–5.5 (sent at 5.5); device 0:
        // F0 0–1, F1 1–2, B0 3–4, B1 5.5–6.5 and its settle to 7.
        assertEquals(7.0, o.stepTime(), 1e-12);
        assertEquals(1 - 8.0 / (2 * 7.0), o.bubble(), 1e-12, "a settle is waiting, not work");
    }

    @Test
    void deviceCostsSumTheirStagesAndFoldWIntoBWhenUnsplit() {
        Placement pl = new Placement(2, new int[] {0, 0, 1, 1});
        double[] f = {1, 2, 3, 4}, b = {0.5, 3, 5, 99}, w = {0, 4, 6, 99};
        ScheduleSimulation.DeviceCosts[] split = ScheduleSimulation.deviceCosts(pl, f, b, w, PipelineSchedule.ZB_H1);
        assertEquals(new ScheduleSimulation.DeviceCosts(3, 3.5, 4), split[0]);
        assertEquals(new ScheduleSimulation.DeviceCosts(7, 5, 6), split[1], "the head's backward is in its forward");
        ScheduleSimulation.DeviceCosts[] whole = ScheduleSimulation.deviceCosts(pl, f, b, w, PipelineSchedule.ONE_F_ONE_B);
        assertEquals(new ScheduleSimulation.DeviceCosts(7, 11, 0), whole[1]);
    }
}
