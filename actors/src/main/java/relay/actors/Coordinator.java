package relay.actors;

import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import org.apache.pekko.actor.NoSerializationVerificationNeeded;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import relay.optimizers.Clipping;
import relay.optimizers.LisaPolicy;
import relay.stages.train.Batch;
import relay.transport.WireMessage;

/**
 * Drives the steps: applies LISA's draw by freeze/unfreeze messages (acknowledged before the step starts),
 * starts each pass by handing the microbatches' tokens to the embedding and targets to the head, runs a
 * norm-only pass first when clipping by global norm (summing the stages' squared norms), and closes a step
 * when every stage has reported its share. It never touches a microbatch in between: the stages follow
 * their devices' plans on their own. A failure or a timeout ends the step with an error naming where.
 */
public final class Coordinator extends AbstractBehavior<Coordinator.Command> {

    public sealed interface Command permits Attach, RunStep, Report, StepTimeout {}

    /** The stages, by stage index (local wiring). */
    public record Attach(List<ActorRef<StageActor.Command>> stages) implements Command, NoSerializationVerificationNeeded {}

    /** Run one step over these microbatches; the reply says how it went (local request). */
    public record RunStep(List<Batch> microbatches, ActorRef<StepResult> replyTo) implements Command, NoSerializationVerificationNeeded {}

    public record StepTimeout(long step) implements Command, NoSerializationVerificationNeeded {}

    /** What a stage tells the coordinator. */
    public record Report(Kind kind, int stage, long step, int microbatch, boolean normPass, double value, String reason,
                         long staleness, long busyNanos) implements Command, WireMessage {
        public enum Kind { LOSS, PASS_DONE, TRAINABLE_SET, FAILED }

        static Report loss(int stage, Position p, double loss) {
            return new Report(Kind.LOSS, stage, p.step(), p.microbatch(), p.normPass(), loss, "", 0, 0);
        }

        static Report passDone(int stage, Position p, double normSquared, long staleness, long busyNanos) {
            return new Report(Kind.PASS_DONE, stage, p.step(), -1, p.normPass(), normSquared, "", staleness, busyNanos);
        }

        static Report trainableSet(int stage, long step) {
            return new Report(Kind.TRAINABLE_SET, stage, step, -1, false, 0, "", 0, 0);
        }

        static Report failed(int stage, Position p, String reason) {
            return new Report(Kind.FAILED, stage, p == null ? -1 : p.step(), p == null ? -1 : p.microbatch(),
                    p != null && p.normPass(), 0, reason, 0, 0);
        }
    }

    /**
     * How a step went. On failure {@code error} says where and losses are partial.
     *
     * @param busyNanos per device, compute time of its stages in the updating pass
     * @param bubble    the idle fraction of the updating pass: 1 − Σ busy / (devices × wall time)
     */
    public record StepResult(long step, double loss, double[] losses, long wallNanos, long[] busyNanos, double bubble,
                             long staleness, double gradNorm, String error) implements NoSerializationVerificationNeeded {
        public boolean ok() {
            return error == null;
        }
    }

    /** A coordinator whose first step is {@code firstStep}; that step applies LISA's current draw whether or not it redraws. */
    static Behavior<Command> create(Placement placement, Clipping clipping, LisaPolicy lisa, Duration timeout, long firstStep) {
        return Behaviors.setup(ctx -> Behaviors.withTimers(timers ->
                new Coordinator(ctx, timers, placement, clipping, lisa, timeout, firstStep)));
    }

    private final TimerScheduler<Command> timers;
    private final Placement placement;
    private final Clipping clipping;
    private final LisaPolicy lisa;
    private final Duration timeout;
    private List<ActorRef<StageActor.Command>> stages;

    private long step;
    private boolean lisaApplied;
    private RunStep pending;
    private String broken;
    private boolean normPass;
    private int waiting;
    private double normSquared;
    private double gradNorm = Double.NaN;
    private double[] losses;
    private long[] busy;
    private long staleness;
    private long passStart;

    private Coordinator(ActorContext<Command> ctx, TimerScheduler<Command> timers, Placement placement, Clipping clipping,
                        LisaPolicy lisa, Duration timeout, long firstStep) {
        super(ctx);
        this.step = firstStep;
        this.timers = timers;
        this.placement = placement;
        this.clipping = clipping;
        this.lisa = lisa;
        this.timeout = timeout;
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Attach.class, a -> {
                    stages = a.stages();
                    return this;
                })
                .onMessage(RunStep.class, this::onRunStep)
                .onMessage(Report.class, this::onReport)
                .onMessage(StepTimeout.class, this::onTimeout)
                .build();
    }

    private int blocks() {
        return stages.size() - 2;
    }

    private Behavior<Command> onRunStep(RunStep r) {
        if (broken != null) {
            r.replyTo().tell(failure(step, "the pipeline stopped after an earlier failure: " + broken));
            return this;
        }
        if (pending != null) {
            r.replyTo().tell(failure(step, "a step is already running"));
            return this;
        }
        pending = r;
        timers.startSingleTimer(new StepTimeout(step), timeout);
        gradNorm = Double.NaN;
        if (lisa != null && (!lisaApplied || lisa.redrawsAt((int) step))) {
            lisaApplied = true;
            int[] active = lisa.activeBlocks((int) step);
            waiting = blocks();
            for (int b = 0; b < blocks(); b++) {
                stages.get(b + 1).tell(new StageActor.SetTrainable(step, Arrays.binarySearch(active, b) >= 0));
            }
        } else {
            startPass(clipping.byNorm(), 1f);
        }
        return this;
    }

    private void startPass(boolean norm, float clip) {
        normPass = norm;
        waiting = stages.size();
        normSquared = 0;
        staleness = 0;
        busy = new long[placement.devices()];
        List<Batch> mbs = pending.microbatches();
        losses = new double[mbs.size()];
        Arrays.fill(losses, Double.NaN);
        passStart = System.nanoTime();
        for (int j = 0; j < mbs.size(); j++) {
            Batch b = mbs.get(j);
            Position pos = new Position(step, j, mbs.size(), b.batch(), b.seq(), norm, clip);
            stages.get(0).tell(new StageActor.Tokens(pos, b.inputs()));
            stages.get(stages.size() - 1).tell(new StageActor.Targets(pos, b.targets()));
        }
    }

    private Behavior<Command> onReport(Report r) {
        if (pending == null || r.step() != step) return this;
        switch (r.kind()) {
            case FAILED -> fail(r.reason());
            case LOSS -> losses[r.microbatch()] = r.value();
            case TRAINABLE_SET -> {
                if (--waiting == 0) startPass(clipping.byNorm(), 1f);
            }
            case PASS_DONE -> {
                if (r.normPass() != normPass) return this;
                normSquared += r.value();
                busy[placement.device(r.stage())] += r.busyNanos();
                staleness = Math.max(staleness, r.staleness());
                if (--waiting == 0) passDone();
            }
        }
        return this;
    }

    private void passDone() {
        if (normPass) {
            gradNorm = Math.sqrt(normSquared);
            startPass(false, clipping.factor(gradNorm));
            return;
        }
        long wall = System.nanoTime() - passStart;
        double busySum = Arrays.stream(busy).sum();
        double loss = Arrays.stream(losses).average().orElse(Double.NaN);
        StepResult result = new StepResult(step, loss, losses, wall, busy, 1 - busySum / (placement.devices() * (double) wall),
                staleness, gradNorm, null);
        timers.cancel(new StepTimeout(step));
        pending.replyTo().tell(result);
        pending = null;
        step++;
    }

    private void fail(String reason) {
        broken = reason;
        timers.cancel(new StepTimeout(step));
        pending.replyTo().tell(failure(step, reason));
        pending = null;
    }

    private Behavior<Command> onTimeout(StepTimeout t) {
        if (pending != null && t.step() == step) {
            fail("step " + step + " timed out after " + timeout + " with " + waiting + " stage report(s) outstanding"
                    + (normPass ? " in the norm pass" : ""));
        }
        return this;
    }

    private StepResult failure(long s, String reason) {
        return new StepResult(s, Double.NaN, losses == null ? new double[0] : losses, 0, new long[0], Double.NaN, 0,
                Double.NaN, reason);
    }
}
