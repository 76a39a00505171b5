package relay.actors;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The order of one stage's work in a pass, with no Pekko in it. A stage follows its device's plan of
 * forwards and backwards (forwards only for the head, whose backward is fused into its forward, and in an
 * evaluation), and the device's rule: a microbatch passes through all the device's stages before the next
 * one competes for the device's thread. So the device's first stage starts a forward only once the
 * previous forward has left the device, and its last stage with a backward starts a backward only once the
 * action before it has left; the stage that finishes a microbatch on the device says so ({@link #leftDeviceTo}).
 */
final class PlanCursor {

    /**
     * Where a stage sits on its device: its index, the device's first stage (it starts the device's forwards
     * and ends its backwards), its last forward stage (it ends the device's forwards) and its last backward
     * stage (it starts the device's backwards: the head's backward is fused, so on the head's device this is
     * the stage before it; −1 when the head is alone there).
     */
    record Place(int stage, int first, int lastForward, int lastBackward, boolean head) {
        static Place of(Placement placement, int stage) {
            int d = placement.device(stage);
            return new Place(stage, placement.firstOnDevice(d), placement.lastOnDevice(d), placement.lastBackwardOnDevice(d),
                    stage == placement.stages() - 1);
        }
    }

    private final Place place;
    private final List<PipelineSchedule.Action> plan;
    private final Set<Integer> forwardsLeft = new HashSet<>();
    private final Set<Integer> backwardsLeft = new HashSet<>();
    private int next;

    PlanCursor(Place place, PipelineSchedule schedule, Pass pass, int device, int devices, int microbatches) {
        this.place = place;
        List<PipelineSchedule.Action> devicePlan = pass == Pass.EVAL ? PipelineSchedule.GPIPE.plan(device, devices, microbatches)
                : schedule.plan(device, devices, microbatches);
        this.plan = place.head() || !pass.backward() ? devicePlan.stream().filter(PipelineSchedule.Action::forward).toList()
                : devicePlan;
    }

    /** The next action, or null once the stage's part of the pass is done. */
    PipelineSchedule.Action next() {
        return next < plan.size() ? plan.get(next) : null;
    }

    /**
     * Whether the device lets the next action start (its inputs aside): the action before it in the plan must
     * have left the device, where this stage is where it would otherwise overtake it — the first stage for
     * forwards, the last backward stage for backwards.
     */
    boolean deviceAllows() {
        PipelineSchedule.Action a = next(), before = next > 0 ? plan.get(next - 1) : null;
        if (a == null || before == null || place.head()) return true;
        boolean gate = a.forward() ? place.stage() == place.first() && before.forward() : place.stage() == place.lastBackward();
        return !gate || (before.forward() ? forwardsLeft : backwardsLeft).contains(before.microbatch());
    }

    /** The next action is done. */
    void advance() {
        next++;
    }

    boolean done() {
        return next == plan.size();
    }

    /**
     * The stages to tell that finishing this action took its microbatch off the device (possibly this stage
     * itself): a forward leaves at the device's last forward stage, which tells the first and the last backward
     * stage; a backward leaves at the first stage, which tells the last backward stage.
     */
    List<Integer> leftDeviceTo(PipelineSchedule.Action a) {
        if (a.forward() ? place.stage() != place.lastForward() : place.stage() != place.first()) return List.of();
        java.util.TreeSet<Integer> to = new java.util.TreeSet<>();
        if (a.forward()) to.add(place.first());
        if (place.lastBackward() >= 0) to.add(place.lastBackward());
        return List.copyOf(to);
    }

    /** A microbatch's forward (or backward) has left the device. */
    void leftDevice(int microbatch, boolean forward) {
        (forward ? forwardsLeft : backwardsLeft).add(microbatch);
    }

    Place place() {
        return place;
    }
}
