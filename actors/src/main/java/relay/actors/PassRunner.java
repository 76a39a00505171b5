package relay.actors;

import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.ActorContext;

/**
 * A connected stage's share of each pass: it holds the pass's messages until its {@link PlanCursor} gets to
 * them, runs the role's forwards, backwards and W's as its device allows, tells the stages that wait for a
 * microbatch to leave the device, and reports the share done with its compute time. A new pass begins with
 * its first message.
 */
final class PassRunner {
    private final StageSpec spec;
    private final StageRole role;
    private final TraceRecorder trace;
    private final ActorRef<StageEvent> events;
    private final Sender sender;
    /** Its stage actor's, for the log (read on the actor's thread, as each failure is). */
    private final ActorContext<?> ctx;
    private final Inbox inbox = new Inbox();

    private Position pass;
    private PlanCursor cursor;
    private long busyNanos;
    private long blockedSince = -1;

    PassRunner(StageSpec spec, StageRole role, TraceRecorder trace, ActorRef<StageEvent> events, Sender sender, ActorContext<?> ctx) {
        this.spec = spec;
        this.role = role;
        this.trace = trace;
        this.events = events;
        this.sender = sender;
        this.ctx = ctx;
    }

    /** The pass in progress (null before the first). */
    Position pass() {
        return pass;
    }

    /** A message with data of a pass, held until the plan gets to it; returns false if the stage failed. */
    boolean data(StageCommand m, Position pos) {
        if (!pos.samePass(pass)) startPass(pos);
        inbox.put(m);
        return guarded(pos, this::drain);
    }

    boolean leftDevice(StageCommand.LeftDevice m) {
        if (!m.pos().samePass(pass)) startPass(m.pos());
        cursor.leftDevice(m.pos().microbatch(), m.forward());
        return guarded(m.pos(), this::drain);
    }

    /** A part of a tied matrix for the pass in progress; returns false if the stage failed. */
    boolean tied(StageCommand m) {
        return exchanged("tied", pass, () -> role.tied(m, pass, sender));
    }

    /** A part its replicas exchange for the pass at pos (which may begin with it); returns false if the stage failed. */
    boolean fromReplica(StageCommand m, Position pos) {
        if (!pos.samePass(pass)) startPass(pos);
        return exchanged("replicas", pos, () -> role.fromReplica(m, pass, sender));
    }

    /**
     * A part of an exchange at the end of a pass (the tied table's, or the replicas'), taken by the role and traced as a
     * span of that name; the stage's share is reported done once the role says so.
     */
    private boolean exchanged(String span, Position pos, java.util.function.BooleanSupplier take) {
        return guarded(pos, () -> {
            long t0 = System.nanoTime();
            boolean complete = take.getAsBoolean();
            long t1 = System.nanoTime();
            busyNanos += t1 - t0;
            trace.span(span, t0, t1, pos);
            if (complete) {
                passDone();
            } else {
                drain(); // an eager backward's exchange settled: the next action may run on the new weights
            }
        });
    }

    /** Frees every tensor still held. */
    void discard() {
        inbox.discard();
    }

    private void startPass(Position pos) {
        pass = pos;
        cursor = new PlanCursor(PlanCursor.Place.of(spec.placement(), spec.stage()), spec.config().schedule(), pos.pass(),
                spec.placement().device(spec.stage()), spec.placement().devices(), pos.microbatches());
        busyNanos = 0;
        blockedSince = System.nanoTime();
        role.startPass(pos);
    }

    /** Runs body; a failure is reported with stage, step and microbatch, and what the pass held is freed. */
    private boolean guarded(Position pos, Runnable body) {
        try {
            body.run();
            return true;
        } catch (RuntimeException | Error e) {
            String where = spec + ", " + pos;
            // A non-finite loss is how training diverges, not a fault of the code: no stack trace for it.
            boolean diverged = e instanceof ArithmeticException;
            if (diverged) {
                ctx.getLog().warn("{}: {}", where, e.getMessage());
            } else {
                ctx.getLog().error("{} failed", where, e);
            }
            // A broken tensor connection is most often a node gone: the run goes on from its snapshot, as for a node seen lost.
            StageEvent.Failure kind = diverged ? StageEvent.Failure.DIVERGED
                    : e instanceof relay.transport.ConnectionLost ? StageEvent.Failure.NODE_LOST : StageEvent.Failure.FAULT;
            events.tell(new StageEvent.Failed(spec.id(), pos, kind, where + ": " + (diverged ? e.getMessage() : e.toString())));
            inbox.discard();
            role.discardPending();
            return false;
        }
    }

    /** Runs the plan's actions while their inputs are here and the device lets them; the last one ends the stage's share. */
    private void drain() {
        for (PipelineSchedule.Action a = cursor.next(); a != null; a = cursor.next()) {
            int j = a.microbatch();
            boolean ready = switch (a.kind()) {
                case F -> role.canForward(j, inbox);
                case B -> role.canBackward(j, inbox);
                case W -> true; // its B ran before it on this stage
            };
            if (!cursor.deviceAllows() || !ready || role.optimizer().exchanging()) return;
            Position pos = pass.withMicrobatch(j);
            long start = System.nanoTime();
            if (blockedSince >= 0) trace.span("wait", blockedSince, start, pos);
            switch (a.kind()) {
                case F -> role.forward(pos, inbox, sender);
                case B -> role.backward(pos, inbox, sender);
                case W -> role.weightGradients(pos);
            }
            role.optimizer().settleAction(pos, sender);
            for (int to : cursor.leftDeviceTo(a)) {
                if (to == spec.stage()) {
                    cursor.leftDevice(j, a.forward());
                } else {
                    sender.deliver(to, new StageCommand.LeftDevice(pos, a.forward()));
                }
            }
            long end = System.nanoTime();
            busyNanos += end - start;
            trace.span(spanName(a.kind(), pos.pass()), start, end, pos);
            blockedSince = end;
            cursor.advance();
            if (cursor.done()) finishPass();
        }
    }

    private void finishPass() {
        long t0 = System.nanoTime();
        boolean complete = role.finishPass(pass, sender);
        busyNanos += System.nanoTime() - t0;
        if (complete) passDone();
    }

    /** A span's name: forward, backward or weights, told apart from the updating pass's in a norm pass and an evaluation. */
    private static String spanName(PipelineSchedule.Kind kind, Pass pass) {
        String what = switch (kind) {
            case F -> "forward";
            case B -> "backward";
            case W -> "weights";
        };
        return switch (pass) {
            case TRAIN -> what;
            case NORM -> what + " (norm pass)";
            case EVAL -> what + " (evaluation)";
        };
    }

    private void passDone() {
        events.tell(new StageEvent.PassDone(spec.id(), pass, role.normSquared(), role.staleness(), busyNanos));
    }
}
