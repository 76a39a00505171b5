package relay.actors;

import java.util.ArrayList;
import java.util.List;

/**
 * An actor's own trace buffer (never shared): spans with step and microbatch, in microseconds of the wall
 * clock since the run's epoch, so that the spans of stages in several JVMs of one machine line up. When
 * tracing is off every call returns at once, so the cost is one branch.
 */
final class TraceRecorder {
    private final boolean on;
    private final long untilStep;
    private final String actor;
    private final int device;
    private final int track;
    private final long epochMicros;
    /** The wall clock in microseconds at System.nanoTime() zero, taken once per JVM. */
    private static final long WALL_AT_NANO_ZERO = System.currentTimeMillis() * 1000 - System.nanoTime() / 1000;
    private final List<TraceEvent> events = new ArrayList<>();

    /** Records spans of steps before {@code untilStep} (0: nothing), timed from the wall-clock instant {@code epochMicros}. */
    TraceRecorder(long untilStep, String actor, int device, int track, long epochMicros) {
        this.on = untilStep > 0;
        this.untilStep = untilStep;
        this.actor = actor;
        this.device = device;
        this.track = track;
        this.epochMicros = epochMicros;
    }

    void span(String name, long startNanos, long endNanos, Position pos) {
        if (!on || pos.step() >= untilStep || endNanos <= startNanos) return;
        events.add(new TraceEvent(name, actor, device, track, WALL_AT_NANO_ZERO + startNanos / 1000 - epochMicros,
                Math.max(1, (endNanos - startNanos) / 1000), pos.step(), pos.microbatch()));
    }

    /** Now on the wall clock, in microseconds: a run's trace epoch. */
    static long wallMicros() {
        return WALL_AT_NANO_ZERO + System.nanoTime() / 1000;
    }

    /** The events so far, handed over (the buffer starts empty again). */
    List<TraceEvent> drain() {
        List<TraceEvent> out = List.copyOf(events);
        events.clear();
        return out;
    }
}
