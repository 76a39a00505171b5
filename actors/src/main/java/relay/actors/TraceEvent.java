package relay.actors;

/**
 * One span of an actor's work in Chrome trace-event terms: a complete event ("X") on the track of the
 * actor (tid) inside the process of its device (pid), times in microseconds since the pipeline started.
 */
public record TraceEvent(String name, String actor, int device, int track, long startMicros, long durationMicros,
                         long step, int microbatch) {}
