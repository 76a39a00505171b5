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
 * A split schedule's W actions belong to the blocks alone: a block runs W j once backward j has left the
 * device, so no W ever holds up an input gradient another stage of its device waits for.
 */
final class PlanCursor {

    /**
     * Where a stage sits on its device: its index, the device's first stage (it starts the device's forwards
     * and ends its backwards), its last forward stage (it ends the device's forwards), its last backward
     * stage (it starts the device's backwards: the head's backward is fused, so on the head's device this is
     * the stage before it; −1 when the head is alone there) and the device's blocks (the stages with W actions).
     */
    record Place(int stage, int first, int lastForward, int lastBackward, boolean head, List<Integer> blocks) {
        static Place of(Placement placement, int stage) {
            int d = placement.device(stage), first = placement.firstOnDevice(d), lastBackward = placement.lastBackwardOnDevice(d);
            List<Integer> blocks = java.util.stream.IntStream.rangeClosed(Math.max(first, 1), lastBackward).boxed().toList();
            return new Place(stage, first, placement.lastOnDevice(d), lastBackward, stage == placement.stages() - 1, blocks);
        }

        boolean block() {
            return blocks.contains(stage);
        }
    }

    private final Place place;
    private final List<PipelineSchedule.Action> plan;
    private final boolean split;
    private final Set<Integer> forwardsLeft = new HashSet<>();
    private final Set<Integer> backwardsLeft = new HashSet<>();
    private int next;

    PlanCursor(Place place, PipelineSchedule schedule, Pass pass, int device, int devices, int microbatches) {
        this.place = place;
        List<PipelineSchedule.Action> devicePlan = pass == Pass.EVAL ? PipelineSchedule.GPIPE.plan(device, devices, microbatches)
                : schedule.plan(device, devices, microbatches);
        this.split = pass.backward() && schedule.splitsBackward();
        this.plan = devicePlan.stream().filter(a -> a.forward()
                || pass.backward() && !place.head() && (a.kind() == PipelineSchedule.Kind.B || place.block())).toList();
    }

    /** The next action, or null once the stage's part of the pass is done. */
    PipelineSchedule.Action next() {
        return next < plan.size() ? plan.get(next) : null;
    }

    /**
     * Whether the device lets the next action start (its inputs aside). A W waits for its backward to have
     * left the device. A forward or backward waits for the forward or backward before it in the plan (W's
     * aside) to have left the device, where this stage is where it would otherwise overtake it — the first
     * stage for forwards, the last backward stage for backwards.
     */
    boolean deviceAllows() {
        PipelineSchedule.Action a = next();
        if (a == null || place.head()) return true;
        if (a.kind() == PipelineSchedule.Kind.W) return backwardsLeft.contains(a.microbatch());
        PipelineSchedule.Action before = null;
        for (int i = next - 1; i >= 0 && before == null; i--) if (plan.get(i).kind() != PipelineSchedule.Kind.W) before = plan.get(i);
        if (before == null) return true;
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
     * stage; a backward leaves at the first stage, which tells the last backward stage and, in a split
     * schedule, every block of the device (their W's wait for it). A W leaves nothing.
     */
    List<Integer> leftDeviceTo(PipelineSchedule.Action a) {
        if (a.kind() == PipelineSchedule.Kind.W || (a.forward() ? place.stage() != place.lastForward() : place.stage() != place.first())) {
            return List.of();
        }
        java.util.TreeSet<Integer> to = new java.util.TreeSet<>();
        if (a.forward()) to.add(place.first());
        if (place.lastBackward() >= 0) to.add(place.lastBackward());
        if (!a.forward() && split) to.addAll(place.blocks());
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
