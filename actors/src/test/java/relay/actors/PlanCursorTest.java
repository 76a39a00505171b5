package relay.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The plan cursor without actors: a whole pipeline of cursors driven by messages delivered in a random
 * order that keeps each sender's order to each receiver (all Pekko promises), over GPipe, 1F1B and ZB-H1,
 * microbatches 1–8 and devices 1–4. Every stage finishes; on each device a microbatch's forward or backward
 * passes through all the device's stages before another forward or backward runs there, in the order of the
 * device's plan; every block runs its W's in the plan's order, each after its backward left the device; 1F1B
 * keeps at most (devices − d) microbatches in flight on device d, and ZB-H1 at most {@code devices} on any
 * device (a microbatch is in flight at a block from its forward to its W).
 */
class PlanCursorTest {

    /** A message in flight: what it carries for the receiving stage. */
    private record Message(int to, char kind, int microbatch) {}

    /** An action a stage ran. */
    private record Ran(int stage, PipelineSchedule.Kind kind, int microbatch) {
        boolean forward() {
            return kind == PipelineSchedule.Kind.F;
        }
    }

    static Stream<Arguments> cases() {
        List<Arguments> all = new ArrayList<>();
        for (PipelineSchedule s : PipelineSchedule.values()) {
            for (int devices = 1; devices <= 4; devices++) {
                for (int m = 1; m <= 8; m++) all.add(Arguments.of(s, devices, m));
            }
        }
        return all.stream();
    }

    /** Embedding, 5 blocks and the head spread over the devices as evenly as contiguity allows. */
    static Placement placement(int devices) {
        int stages = 7;
        int[] d = new int[stages];
        for (int s = 0; s < stages; s++) d[s] = s * devices / stages;
        return new Placement(devices, d);
    }

    @ParameterizedTest(name = "{0}, {1} devices, {2} microbatches")
    @MethodSource("cases")
    void everyStageFinishesAndEachDeviceRunsItsPlanOneMicrobatchAtATime(PipelineSchedule schedule, int devices, int microbatches) {
        Placement placement = placement(devices);
        for (long seed = 1; seed <= 20; seed++) {
            Map<Integer, List<Ran>> log = simulate(schedule, placement, microbatches, Pass.TRAIN, seed);
            for (int d = 0; d < devices; d++) {
                List<Ran> fb = log.get(d).stream().filter(r -> r.kind() != PipelineSchedule.Kind.W).toList();
                List<List<Ran>> runs = runs(fb);
                List<PipelineSchedule.Action> expected = schedule.plan(d, devices, microbatches).stream()
                        .filter(a -> a.kind() != PipelineSchedule.Kind.W).toList();
                if (placement.lastBackwardOnDevice(d) < 0) expected = expected.stream().filter(PipelineSchedule.Action::forward).toList();
                assertEquals(expected, runs.stream().map(r -> new PipelineSchedule.Action(r.get(0).kind(), r.get(0).microbatch())).toList(),
                        "device " + d + " (seed " + seed + ") ran " + log.get(d));
                for (List<Ran> run : runs) assertEquals(stagesOf(placement, d, run.get(0).forward()), run.stream().map(Ran::stage).toList(),
                        "a microbatch goes through every stage of device " + d + " in turn: " + run);
                if (schedule == PipelineSchedule.ONE_F_ONE_B) {
                    assertTrue(maxInFlight(log.get(d), placement.firstOnDevice(d), placement.firstOnDevice(d) == placement.stages() - 1) <= Math.min(microbatches, devices - d),
                            "1F1B keeps at most " + (devices - d) + " microbatches in flight on device " + d);
                }
                for (int s = Math.max(1, placement.firstOnDevice(d)); s <= placement.lastBackwardOnDevice(d); s++) {
                    checkWeights(schedule, log.get(d), s, placement.firstOnDevice(d), devices, microbatches);
                }
            }
        }
    }

    /** A block's W's: one per microbatch in order after the backward left the device (split schedules), at most {@code devices} in flight. */
    private static void checkWeights(PipelineSchedule schedule, List<Ran> ran, int block, int first, int devices, int microbatches) {
        List<Integer> ws = new ArrayList<>();
        Set<Integer> leftDevice = new HashSet<>();
        int inFlight = 0, max = 0;
        for (Ran r : ran) {
            if (r.kind() == PipelineSchedule.Kind.B && r.stage() == first) leftDevice.add(r.microbatch());
            if (r.stage() != block) continue;
            if (r.kind() == PipelineSchedule.Kind.W) {
                assertTrue(leftDevice.contains(r.microbatch()), "W" + r.microbatch() + " of stage " + block + " ran before its backward left the device");
                ws.add(r.microbatch());
            }
            inFlight += switch (r.kind()) {
                case F -> 1;
                case B -> schedule.splitsBackward() ? 0 : -1;
                case W -> -1;
            };
            max = Math.max(max, inFlight);
        }
        assertEquals(schedule.splitsBackward() ? java.util.stream.IntStream.range(0, microbatches).boxed().toList() : List.of(), ws,
                "stage " + block + "'s W's");
        if (schedule == PipelineSchedule.ZB_H1) {
            assertTrue(max <= Math.min(devices, microbatches), "ZB-H1 kept " + max + " microbatches in flight at stage " + block);
        }
    }

    @ParameterizedTest(name = "{1} devices, {2} microbatches")
    @MethodSource("cases")
    void anEvaluationRunsForwardsOnly(PipelineSchedule schedule, int devices, int microbatches) {
        Map<Integer, List<Ran>> log = simulate(schedule, placement(devices), microbatches, Pass.EVAL, 7);
        for (List<Ran> ran : log.values()) {
            assertTrue(ran.stream().allMatch(Ran::forward));
            assertEquals(microbatches, runs(ran).size());
        }
    }

    /** The device's stages a microbatch passes through: in order forward, in reverse backward (the head's backward is fused). */
    private static List<Integer> stagesOf(Placement p, int d, boolean forward) {
        List<Integer> s = new ArrayList<>();
        for (int i = p.firstOnDevice(d); i <= p.lastOnDevice(d); i++) if (forward || i != p.stages() - 1) s.add(i);
        if (!forward) java.util.Collections.reverse(s);
        return s;
    }

    /** Consecutive actions of one microbatch and direction. */
    private static List<List<Ran>> runs(List<Ran> ran) {
        List<List<Ran>> runs = new ArrayList<>();
        for (Ran r : ran) {
            List<Ran> last = runs.isEmpty() ? null : runs.get(runs.size() - 1);
            if (last != null && last.get(0).forward() == r.forward() && last.get(0).microbatch() == r.microbatch()
                    && !last.stream().map(Ran::stage).toList().contains(r.stage())) {
                last.add(r);
            } else {
                runs.add(new ArrayList<>(List.of(r)));
            }
        }
        return runs;
    }

    /** The most microbatches the device's first stage had forwarded and not yet taken back (the head takes each back at once). */
    private static int maxInFlight(List<Ran> ran, int first, boolean head) {
        int inFlight = 0, max = 0;
        for (Ran r : ran) {
            if (r.stage() != first) continue;
            inFlight += r.forward() ? 1 : -1;
            max = Math.max(max, inFlight);
            if (head) inFlight--;
        }
        return max;
    }

    /**
     * Runs a pass: the coordinator's tokens and targets, then whatever each stage's cursor allows, each
     * output a message on the (sender, receiver) channel; a random non-empty channel delivers next.
     */
    static Map<Integer, List<Ran>> simulate(PipelineSchedule schedule, Placement p, int m, Pass pass, long seed) {
        int n = p.stages(), head = n - 1;
        List<PlanCursor> cursors = new ArrayList<>();
        List<Set<String>> inputs = new ArrayList<>();
        for (int s = 0; s < n; s++) {
            cursors.add(new PlanCursor(PlanCursor.Place.of(p, s), schedule, pass, p.device(s), p.devices(), m));
            inputs.add(new HashSet<>());
        }
        Map<List<Integer>, ArrayDeque<Message>> channels = new LinkedHashMap<>();
        for (int j = 0; j < m; j++) {
            channels.computeIfAbsent(List.of(-1, 0), k -> new ArrayDeque<>()).add(new Message(0, 'T', j));
            channels.computeIfAbsent(List.of(-1, head), k -> new ArrayDeque<>()).add(new Message(head, 'Y', j));
        }
        Map<Integer, List<Ran>> log = new LinkedHashMap<>();
        for (int d = 0; d < p.devices(); d++) log.put(d, new ArrayList<>());
        SplittableRandom rng = new SplittableRandom(seed);
        while (true) {
            List<ArrayDeque<Message>> open = channels.values().stream().filter(q -> !q.isEmpty()).toList();
            if (open.isEmpty()) break;
            Message msg = open.get(rng.nextInt(open.size())).poll();
            int s = msg.to();
            if (msg.kind() == 'L' || msg.kind() == 'l') {
                cursors.get(s).leftDevice(msg.microbatch(), msg.kind() == 'L');
            } else {
                inputs.get(s).add(msg.kind() + "" + msg.microbatch());
            }
            run(s, cursors, inputs, channels, log, p, pass);
        }
        for (int s = 0; s < n; s++) assertTrue(cursors.get(s).done(), "stage " + s + " stopped at " + cursors.get(s).next());
        return log;
    }

    /** What the stage actor's drain does: run actions while the device allows and their inputs are here. */
    private static void run(int s, List<PlanCursor> cursors, List<Set<String>> inputs, Map<List<Integer>, ArrayDeque<Message>> channels,
                            Map<Integer, List<Ran>> log, Placement p, Pass pass) {
        PlanCursor c = cursors.get(s);
        int head = p.stages() - 1;
        for (PipelineSchedule.Action a = c.next(); a != null; a = c.next()) {
            int j = a.microbatch();
            Set<String> in = inputs.get(s);
            boolean ready = switch (a.kind()) {
                case F -> in.contains((s == 0 ? "T" : "F") + j) && (s != head || in.contains("Y" + j));
                case B -> in.contains("B" + j);
                case W -> true;
            };
            if (!c.deviceAllows() || !ready) return;
            log.get(p.device(s)).add(new Ran(s, a.kind(), j));
            if (a.forward() && s < head) send(channels, s, s + 1, 'F', j);
            if (a.forward() && s == head && pass.backward()) send(channels, s, s - 1, 'B', j);
            if (a.kind() == PipelineSchedule.Kind.B && s > 0) send(channels, s, s - 1, 'B', j);
            for (int to : c.leftDeviceTo(a)) {
                if (to == s) {
                    c.leftDevice(j, a.forward());
                } else {
                    send(channels, s, to, a.forward() ? 'L' : 'l', j);
                }
            }
            c.advance();
        }
    }

    private static void send(Map<List<Integer>, ArrayDeque<Message>> channels, int from, int to, char kind, int j) {
        channels.computeIfAbsent(List.of(from, to), k -> new ArrayDeque<>()).add(new Message(to, kind, j));
    }
}
