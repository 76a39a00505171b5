package relay.actors;

import java.util.ArrayList;
import java.util.List;

/**
 * An actor's own trace buffer (never shared): spans with step and microbatch. When tracing is off every
 * call returns at once, so the cost is one branch.
 */
final class TraceRecorder {
    private final boolean on;
    private final long untilStep;
    private final String actor;
    private final int device;
    private final int track;
    private final long epochNanos;
    private final List<TraceEvent> events = new ArrayList<>();

    /** Records spans of steps before {@code untilStep} (0: nothing). */
    TraceRecorder(long untilStep, String actor, int device, int track, long epochNanos) {
        this.on = untilStep > 0;
        this.untilStep = untilStep;
        this.actor = actor;
        this.device = device;
        this.track = track;
        this.epochNanos = epochNanos;
    }

    void span(String name, long startNanos, long endNanos, Position pos) {
        if (!on || pos.step() >= untilStep || endNanos <= startNanos) return;
        events.add(new TraceEvent(name, actor, device, track, (startNanos - epochNanos) / 1000,
                Math.max(1, (endNanos - startNanos) / 1000), pos.step(), pos.microbatch()));
    }

    /** The events so far, handed over (the buffer starts empty again). */
    List<TraceEvent> drain() {
        List<TraceEvent> out = List.copyOf(events);
        events.clear();
        return out;
    }
}
