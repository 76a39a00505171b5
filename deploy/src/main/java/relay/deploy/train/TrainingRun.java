package relay.deploy.train;

import com.typesafe.config.Config;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;
import relay.actors.ClusterSettings;
import relay.actors.Nodes;
import relay.actors.Pipeline;
import relay.actors.NodesUnavailable;
import relay.actors.Placement;
import relay.actors.plan.StageCosts;
import relay.optimizers.Method;
import relay.stages.data.PackedDataset;
import relay.stages.io.CheckpointShard;
import relay.stages.io.ModelFileException;
import relay.stages.io.UnwritableFile;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;
import relay.stages.train.Batch;

/**
 * One training run from settings to a run directory: config.conf (the resolved settings), metrics.jsonl (a
 * line per step), trace.json, report.html, history.log and checkpoints/step-N ({@link Checkpoint}). Its
 * inputs are all checked before anything is written ({@link RunInputs}); the directory is held by this
 * process alone ({@link RunDirectory}). The step loop calls its hooks — evaluation, checkpoint, report,
 * history, the stop signal — each a method of its own.
 */
public final class TrainingRun {
    public record Summary(Path directory, int steps, double trainLoss, double validationLoss, double seconds) {}

    /** The settings it runs with: its own, or with fewer replicas after a lost node ({@link #onWorkers}). */
    private final TrainConfig c;
    /** The run's own settings. */
    private final TrainConfig own;
    private final Config resolved;
    private final RunInputs in;
    private final RunDirectory dir;
    private final PrintStream out;
    private final UnaryOperator<Engine> wrap;
    private final Nodes nodes;
    private final StopRequest stop;
    private final List<Report.Point> points = new ArrayList<>();
    private final long start = System.nanoTime();
    /** The checkpoint whose weights and optimizer state are being written while the steps go on, or null. */
    private Pending pending;
    /** The data position after each step snapshotted in the nodes' memory, kept across restarts: where a restart from one goes on. */
    private final Map<Integer, PackedDataset.Position> snapshots;

    private record Pending(int step, Path directory, CompletableFuture<List<CheckpointShard.File>> written) {}

    private TrainingRun(TrainConfig c, TrainConfig own, Config resolved, RunInputs in, RunDirectory dir, PrintStream out,
                        UnaryOperator<Engine> wrap, Nodes nodes, StopRequest stop, Map<Integer, PackedDataset.Position> snapshots) {
        this.c = c;
        this.own = own;
        this.snapshots = snapshots;
        this.nodes = nodes;
        this.stop = stop;
        this.resolved = resolved;
        this.in = in;
        this.dir = dir;
        this.out = out;
        this.wrap = wrap;
    }

    /**
     * A new run — in {@code runDir}, or when that is null in a directory of its own under the settings' out —
     * or with {@code resumeFrom} (a checkpoint, or a run directory for its newest complete checkpoint) the
     * continuation of one in its own directory, exactly as if it had not stopped.
     */
    public static Summary run(TrainConfig c, Config resolved, PrintStream out, Path resumeFrom, Path runDir) throws IOException {
        return run(c, resolved, out, resumeFrom, runDir, UnaryOperator.identity());
    }

    /**
     * The same, each engine passed through {@code wrap} (tests inject failures there). A failed step restarts
     * the run from its newest checkpoint (or from the start) up to {@code restarts} times, as a resume would:
     * a stage's crash or a timeout then leaves the result as if nothing had happened. A step that fails again
     * after a restart fails for a reason a restart does not cure (a diverged loss, a bug) and ends the run.
     */
    static Summary run(TrainConfig c, Config resolved, PrintStream out, Path resumeFrom, Path runDir, UnaryOperator<Engine> wrap)
            throws IOException {
        // A stop signal waits until the nodes are closed too: a cluster's workers see their coordinator leave, not vanish.
        try (StopRequest stop = new StopRequest()) {
            RunNotices notices = new RunNotices(out);
            RunInputs prepared = RunInputs.prepare(c, resumeFrom, notices, RunMemory.Room.here(), out);
            stop.begin();
            Path given = prepared.start().checkpoint() != null ? Checkpoint.run(prepared.start().checkpoint()) : runDir;
            try (Nodes nodes = nodes(c, resolved, out, refusal -> notices.accept(refusal + "; give it another --index"));
                 RunDirectory dir = given != null ? RunDirectory.open(given) : RunDirectory.fresh(c)) {
                notices.recordIn(dir);
                return run(c, resolved, out, wrap, prepared, nodes, dir, stop);
            }
        }
    }

    /** The run in its directory, on its nodes, restarted as it needs. */
    private static Summary run(TrainConfig c, Config resolved, PrintStream out, UnaryOperator<Engine> wrap, RunInputs in, Nodes nodes,
                               RunDirectory dir, StopRequest stop) throws IOException {
        Path path = dir.path();
        try {
            if (in.start().checkpoint() == null && Checkpoint.any(path)) {
                throw new IllegalArgumentException(path + " gained a checkpoint while this run was starting (another relay train?); "
                        + "run the command again to go on from it");
            }
            // What a killed run left half-written goes before anything is written again.
            Checkpoint.discardIncomplete(path);
            int failedAt = -1;
            Map<Integer, PackedDataset.Position> snapshots = new HashMap<>();
            // What the run goes on with: its own settings, or fewer replicas while nodes it lost are not replaced.
            TrainConfig running = c;
            for (int restart = 1; ; ) {
                try {
                    return new TrainingRun(running, c, resolved, in, dir, out, wrap, nodes, stop, snapshots).train();
                } catch (Regrow g) {
                    running = g.config();
                    in = in.restartFrom(g.checkpoint(), running);
                } catch (Failed | NodesUnavailable e) {
                    if (e instanceof Failed f && f.ends()) throw e;
                    // A node lost during a step, a snapshot's or a checkpoint's copy, or an evaluation.
                    NodesUnavailable lostNode = e instanceof NodesUnavailable n ? n : e.getCause() instanceof NodesUnavailable n ? n : null;
                    int step = e instanceof Failed f ? f.step() : -1;
                    Replaced replaced = lostNode != null ? replace(nodes, c, in.model(), out) : null;
                    if ((lostNode != null && replaced == null) || restart > c.run().restarts() || (step >= 0 && step == failedAt)) throw e;
                    failedAt = step;
                    if (replaced != null) running = replaced.config();
                    GoingOn on = goingOn(running, in, dir, out, lostNode, snapshots);
                    out.printf("%s%nrestarting the run (%d of %d restarts)%s%s%n", e.getMessage(), restart, c.run().restarts(),
                            replaced == null ? "" : ": " + replaced.said(), on.said() == null ? "" : "; " + on.said());
                    dir.history((e instanceof Failed ? "" : e.getMessage() + "; ") + "restarting (" + restart + " of "
                            + c.run().restarts() + ")" + (replaced == null ? "" : ": " + replaced.said()) + (on.said() == null ? "" : "; " + on.said()));
                    in = on.in();
                    restart++;
                }
            }
        } catch (RuntimeException | IOException e) {
            dir.discardIfUnused();
            // Refused input is found before the first step (exit 2); the same exception type once steps are recorded is
            // a failure of the run (exit 1), however the code that threw it classed it.
            if (e instanceof IllegalArgumentException && dir.used()) {
                throw new Failed("the run failed after its first step: " + e.getMessage() + "; go on with: relay train --resume "
                        + dir.path(), e, -1);
            }
            throw e;
        }
    }

    /** Where a restart goes on from: its inputs, and what to say of it (null: nothing beyond the restart). */
    private record GoingOn(RunInputs in, String said) {}

    /**
     * A lost node's restart goes on from the snapshot in memory its failure found, when the run kept that step's data
     * position and no newer checkpoint is whole (a snapshot whose copies were still arriving gives way to it); any
     * other restart, or one whose snapshots did not survive (said so), from the newest checkpoint or the start.
     */
    private static GoingOn goingOn(TrainConfig c, RunInputs in, RunDirectory dir, PrintStream out, NodesUnavailable lostNode,
                                   Map<Integer, PackedDataset.Position> snapshots) {
        Path checkpoint = Checkpoint.any(dir.path()) ? Checkpoint.locate(dir.path(), refused(out, dir)) : null;
        Pipeline.Snapshot snapshot = lostNode == null ? null : lostNode.snapshot();
        PackedDataset.Position position = snapshot == null ? null : snapshots.get(Math.toIntExact(snapshot.step()));
        // Snapshots are of one replica (a run shrunk to one takes them): nodes that joined may have made room for more.
        boolean oneReplica = c.pipeline().replicas() == 1;
        if (oneReplica && position != null && (checkpoint == null || snapshot.step() >= Checkpoint.resumable(checkpoint, c).step())) {
            return new GoingOn(in.restartFrom(snapshot, position), "going on from the snapshot of step " + snapshot.step()
                    + " in the memory of the nodes left");
        }
        String why = oneReplica ? "no snapshot in memory has every stage on a node left" : "the snapshots in memory are of one replica";
        String said = lostNode != null && !snapshots.isEmpty() ? why + ": going on from "
                + (checkpoint == null ? "the start" : dir.path().relativize(checkpoint)) : null;
        return new GoingOn(in.restartFrom(checkpoint, c), said);
    }

    /** A refused checkpoint, told on the console and in history.log. */
    private static Consumer<String> refused(PrintStream out, RunDirectory dir) {
        return why -> {
            out.println(why);
            dir.history(why, out);
        };
    }

    /** A restart after a lost node: what happened, said, and the settings the run goes on with. */
    private record Replaced(String said, TrainConfig config) {}

    /**
     * After a node was lost: workers that joined since (replacements) are admitted, waiting for one up to the
     * join timeout when no worker is left; then the run's replicas that the workers left hold ({@link #onWorkers})
     * take the devices in order when the pipeline is placed again. Returns what happened, or null when no worker is left.
     */
    private static Replaced replace(Nodes nodes, TrainConfig c, ModelConfig model, PrintStream out) {
        if (nodes == null) return null;
        // None may be lost since the last restart (when a snapshot's holder went too, found on restoring it).
        List<String> lost = nodes.dropLost();
        if (nodes.deviceNodes() == 0) {
            out.printf("%s lost, no worker left: waiting up to %d s (relay.cluster.join-timeout) for a node to replace it "
                    + "(relay node --join %s --index 1)%n", String.join(", ", lost), nodes.joinTimeout().toSeconds(), nodes.address());
        }
        List<String> joined = nodes.admitJoined();
        TrainConfig next = onWorkers(c, nodes.deviceNodes(), devices(c, model));
        int devices = devices(next, model) * next.pipeline().replicas();
        if (nodes.deviceNodes() == 0 || nodes.deviceNodes() > devices) return null;
        return new Replaced((lost.isEmpty() ? "no other node lost" : String.join(", ", lost) + " lost")
                + (joined.isEmpty() ? "" : ", " + String.join(", ", joined) + " joined") + "; " + placed(nodes, c, next, devices), next);
    }

    /** Where the devices go now, and with fewer replicas how the batch is kept. */
    private static String placed(Nodes nodes, TrainConfig c, TrainConfig next, int devices) {
        List<String> placed = new ArrayList<>();
        for (int d = 0; d < devices; d++) placed.add("device " + d + " on " + nodes.nodeOf(d, devices));
        int r = next.pipeline().replicas();
        int size = next.microbatchSize();
        String replicas = r == c.pipeline().replicas() ? "" : String.format(Locale.ROOT, "; going on with %d of %d replicas, %d "
                + "microbatch%s of %d sequence%s a step (the same batch), until a node joins at a checkpoint", r, c.pipeline().replicas(),
                next.pipeline().microbatches(), next.pipeline().microbatches() == 1 ? "" : "es", size, size == 1 ? "" : "s");
        return "placed again: " + String.join(", ", placed) + replicas;
    }

    /**
     * The settings a run of {@code c} goes on with on {@code workers} workers, each replica on {@code devices} devices:
     * all its replicas while it has as many workers as it began with, else as many as the workers hold at the load each
     * began with (R × workers ÷ workers it began with), the global batch kept ({@link TrainConfig#withReplicas}) — but
     * never so few that a worker is left without a device (a placement takes no more workers than devices): then
     * the fewest replicas above that the batch splits over, or all of them.
     */
    static TrainConfig onWorkers(TrainConfig c, int workers, int devices) {
        int r = c.pipeline().replicas(), began = c.pipeline().nodes() - 1;
        if (r == 1 || workers >= began) return c;
        int least = Math.max(1, (workers + devices - 1) / devices), load = Math.max(least, r * workers / began);
        // The load's replicas, or fewer down to the least, else more up to all of them: the first the batch splits over.
        return java.util.stream.IntStream.concat(java.util.stream.IntStream.iterate(load, k -> k >= least, k -> k - 1),
                        java.util.stream.IntStream.range(load + 1, r))
                .mapToObj(c::withReplicas).filter(java.util.Objects::nonNull).findFirst().orElse(c);
    }

    /** A run going on with fewer replicas than its own, ended at a checkpoint to go on from it with more: a node joined. */
    private static final class Regrow extends RuntimeException {
        private static final long serialVersionUID = 1L;
        private final transient TrainConfig config;
        private final transient Path checkpoint;

        Regrow(TrainConfig config, Path checkpoint) {
            super(null, null, false, false);
            this.config = config;
            this.checkpoint = checkpoint;
        }

        TrainConfig config() {
            return config;
        }

        Path checkpoint() {
            return checkpoint;
        }
    }

    /**
     * The nodes a pipeline runs on for the whole run, restarts included: this JVM, or with nodes &gt; 1 a
     * cluster this JVM coordinates (waiting until every worker has joined; {@code refused} hears of the workers it
     * refuses); none for the plain loop.
     */
    private static Nodes nodes(TrainConfig c, Config resolved, PrintStream out, Consumer<String> refused) {
        if (!c.optimizer().method().inPipeline()) return null;
        if (c.pipeline().nodes() == 1) return Nodes.local(com.typesafe.config.ConfigFactory.empty());
        ClusterSettings cs = ClusterSettings.from(resolved);
        out.printf("waiting for %d worker node(s) to join %s ...%n", c.pipeline().nodes() - 1, cs.address(cs.port()));
        return Nodes.coordinator(cs, c.pipeline().nodes(), com.typesafe.config.ConfigFactory.empty(), refused);
    }

    /** A step whose failure names what failed and where the run can go on from. */
    public static final class Failed extends RuntimeException {
        private static final long serialVersionUID = 1L;
        private final int step;

        Failed(String message, Throwable cause, int step) {
            super(message, cause);
            this.step = step;
        }

        /** Whether it ends the run, no restart tried: a file of the run could not be written (a restart would write it again). */
        boolean ends() {
            return getCause() instanceof UnwritableFile;
        }

        /** The step that failed, counted from 1. */
        int step() {
            return step;
        }
    }

    private Summary train() throws IOException {
        int first = in.start().step(), steps = c.run().steps();
        // A snapshot is kept on its stage's node and the next: with one worker (or one JVM) a loss takes every copy. Replicas
        // of the pipeline take none yet: a lost node costs them the steps since the last checkpoint.
        SnapshotPace pace = c.run().snapshotEvery() != 0 && nodes != null && nodes.deviceNodes() > 1 && c.pipeline().replicas() == 1
                ? new SnapshotPace(c.run().snapshotEvery()) : null;
        try (Engine engine = wrap.apply(engine())) {
            if (in.start().checkpoint() != null) restore(engine);
            if (in.start().snapshot() != null) restoreSnapshot(engine);
            int done = first;
            try {
                dir.writeSettings(resolved);
                MetricsLog metrics = first == 0 ? MetricsLog.create(dir.resolve("metrics.jsonl"))
                        : MetricsLog.resume(dir.resolve("metrics.jsonl"), first, points);
                if (first == 0) {
                    dir.history("started: " + steps + " steps of " + c.optimizer().method().key() + " on " + c.model().name());
                } else {
                    String from = in.start().checkpoint() != null ? dir.path().relativize(in.start().checkpoint()).toString()
                            : "the snapshot in the nodes' memory";
                    out.printf("resuming %s at step %d of %d from %s%n", dir.path(), first, steps, from);
                    dir.history("resumed at step " + first + " of " + steps + " from " + from);
                    List<String> aside = Checkpoint.setAsideAfter(dir.path(), first);
                    if (!aside.isEmpty()) {
                        String said = "the checkpoints after step " + first + " are of the run before it went back to it: set aside as "
                                + String.join(", ", aside);
                        out.println(said);
                        dir.history(said);
                    }
                }
                out.println("training on the " + engine.describe());
                Progress progress = new Progress(first, steps, out);
                int snapshotOf = 0;
                double loss = Double.NaN, val = points.stream().mapToDouble(Report.Point::val).filter(v -> !Double.isNaN(v))
                        .reduce((a, b) -> b).orElse(Double.NaN);
                for (done = first + 1; done <= steps; done++) {
                    Engine.Step st = step(engine, done, snapshotOf);
                    seal(false);
                    snapshotOf = pace != null && pace.due(done, st.seconds()) && done < steps ? snapshot(done, pace) : 0;
                    boolean last = done == steps, stopping = stop.requested() && !last;
                    boolean evaluating = done % c.run().evalEvery() == 0 || last;
                    double stepVal = evaluating ? validate(engine) : Double.NaN;
                    if (evaluating) val = stepVal;
                    loss = st.loss();
                    double tps = c.run().batch() * (double) c.run().seq() / st.seconds();
                    Report.Point point = new Report.Point(done, loss, stepVal, c.optimizerSettings().schedule().at(done - 1), tps,
                            memory(st));
                    metrics.append(point, st.seconds(), st.bubble());
                    points.add(point);
                    dir.markUsed();
                    progress.update(done, loss, val, tps);
                    // A run shorter than its traced steps writes its trace at the end, before its last report.
                    if (done == c.pipeline().traceSteps() || (last && first == 0 && c.pipeline().traceSteps() > steps)) {
                        engine.writeTrace(dir.resolve("trace.json"));
                    }
                    boolean checkpointed = done % c.run().checkpointEvery() == 0 || last || stopping;
                    if (checkpointed) checkpoint(engine, done, st);
                    if (last || stopping) seal(true);
                    if (last) dir.history(String.format(Locale.ROOT, "finished: validation loss %.3f", val));
                    if (stopping) dir.history("stopped by a signal after step " + done + " of " + steps);
                    if (evaluating || last || stopping) report(engine, !(last || stopping));
                    if (checkpointed && !last && !stopping) regrowAt(done);
                    if (stopping) {
                        progress.done();
                        out.printf("stopped by a signal after step %d of %d; checkpoint %s; go on with: %s%n",
                                done, steps, Checkpoint.directory(dir.path(), done), goOn());
                        return new Summary(dir.path(), done, loss, val, seconds());
                    }
                }
                progress.done();
                stop.complete();
                out.printf(Locale.ROOT, "done in %.0f s: train loss %.3f, validation loss %.3f (perplexity %.1f); run directory %s%n",
                        seconds(), loss, val, Math.exp(val), dir.path());
                return new Summary(dir.path(), steps, loss, val, seconds());
            } catch (UnwritableFile e) {
                throw unwritable(e, done);
            }
        }
    }

    /**
     * A run going on with fewer replicas than its own takes the workers that joined since at a checkpoint: once it is
     * whole, the run goes on from it with the replicas they make room for ({@link Regrow}).
     */
    private void regrowAt(int done) throws IOException {
        if (nodes == null || c.pipeline().replicas() == own.pipeline().replicas()) return;
        List<String> joined = nodes.admitJoined();
        TrainConfig more = onWorkers(own, nodes.deviceNodes(), devices(own, in.model()));
        if (joined.isEmpty() || more.pipeline().replicas() <= c.pipeline().replicas()) return;
        seal(true);
        Path checkpoint = Checkpoint.newestComplete(dir.path());
        if (checkpoint == null || !checkpoint.equals(Checkpoint.directory(dir.path(), done))) return; // it could not be written: on as we are
        String said = String.join(", ", joined) + " joined: going on from " + dir.path().relativize(checkpoint) + " with "
                + more.pipeline().replicas() + " of " + own.pipeline().replicas() + " replicas";
        out.println(said);
        dir.history(said);
        throw new Regrow(more, checkpoint);
    }

    /**
     * A file of the run that could not be written (a full disk, a directory made read-only) ends it: the checkpoint
     * being written goes, the newest complete one stands, and history.log and the console say where to go on from.
     */
    private Failed unwritable(UnwritableFile e, int step) {
        try {
            // A checkpoint whose stages are still writing it is sealed once they are done, or goes if they could not.
            seal(true);
        } catch (IOException | RuntimeException also) {
            e.addSuppressed(also);
        }
        try {
            Checkpoint.discardIncomplete(dir.path());
            dir.history("ended: " + e.getMessage());
        } catch (IOException also) {
            e.addSuppressed(also);
        }
        return new Failed(e.getMessage() + goOnFrom("once there is room"), e, step);
    }
    private double seconds() {
        return (System.nanoTime() - start) / 1e9;
    }

    /** The pipeline's devices: as many as asked, at most one per stage. */
    static int devices(TrainConfig c, ModelConfig model) {
        return Math.min(c.pipeline().devices(), model.layers() + 2);
    }

    private Engine engine() {
        return engine(c, in.model(), in.weights(), in.start().step(), nodes);
    }

    /**
     * The engine of a run from step {@code first}: the pipeline for the methods that run in it, on these nodes,
     * placed by measured stage cost; the plain loop for the others.
     */
    static Engine engine(TrainConfig c, ModelConfig model, Path weights, int first, Nodes nodes) {
        Method method = c.optimizer().method();
        if (!method.inPipeline()) return new LoopEngine(model, c.run().seed(), method, c.optimizerSettings(), weights, first,
                c.pipeline().recompute(), c.precision());
        int devices = devices(c, model), replicas = c.pipeline().replicas();
        // Measured on a device of the threads this JVM's devices get (the costs place stages, and re-balance them in one JVM),
        // with a replica's share of a microbatch.
        int threads = c.pipelineConfig(first).execution().threadsOnNode(Runtime.getRuntime().availableProcessors(), devices * replicas);
        StageCosts costs = StageCosts.measure(model, c.replicaMicrobatchSize(), c.run().seq(), c.precision(), threads);
        Placement placement = Placement.balanced(costs.total(), devices).withReplicas(replicas);
        // Stages move through a model directory only this JVM reads: re-balancing is for a pipeline in one JVM.
        boolean rebalance = c.pipeline().rebalance() && c.pipeline().nodes() == 1;
        return new PipelineEngine(nodes, model, c.run().seed(), weights, placement, c.pipelineConfig(first), rebalance ? costs : null);
    }

    /** The command that goes on with this run: a cluster run's needs its workers again, or nodes=1 to go on in one JVM. */
    private String goOn() {
        String resume = "relay train --resume " + dir.path();
        int nodes = c.pipeline().nodes();
        return nodes == 1 ? resume : resume + " with its " + (nodes - 1) + " worker node(s) (relay cluster local --nodes " + nodes
                + " --resume …, or the launcher that started it), or with nodes=1 in one JVM";
    }

    /**
     * Step {@code done} (counted from 1), first snapshotting the state after step {@code snapshotOf} (0: none); a
     * failure says which step of how many, and where the run can go on from.
     */
    private Engine.Step step(Engine engine, int done, int snapshotOf) {
        List<Batch> microbatches = new ArrayList<>();
        for (int j = 0; j < c.pipeline().microbatches(); j++) microbatches.add(in.data().next(c.microbatchSize()));
        try {
            return engine.step(microbatches, snapshotOf);
        } catch (RuntimeException e) {
            String diverged = e instanceof ArithmeticException ? "; training diverged: the learning rate (lr = " + c.optimizer().lr()
                    + ") is likely too high (the model's weights were finite numbers when loaded)" : "";
            throw failed("step " + done + " of " + c.run().steps(), e, diverged, done);
        }
    }

    /**
     * What failed at step {@code done} (a step, or a checkpoint's copy) as a {@link Failed} that says where the
     * run can go on from — the checkpoint before it, sealed first if its files are written — and in history.log.
     */
    private Failed failed(String what, RuntimeException e, String hint, int done) {
        try {
            seal(true);
        } catch (IOException | RuntimeException unsealed) {
            e.addSuppressed(unsealed);
        }
        String why = what + " failed: " + e.getMessage() + hint;
        try {
            dir.history(why);
        } catch (IOException unwritable) {
            e.addSuppressed(unwritable);
        }
        return new Failed(why + goOnFrom(""), e, done);
    }

    /** Where the run can go on from (its newest complete checkpoint) and with which command, {@code when} (if it says). */
    private String goOnFrom(String when) {
        try {
            return "; the newest checkpoint is " + Checkpoint.locate(dir.path(), refused(out, dir)) + ": go on from it with " + goOn()
                    + (when.isEmpty() ? "" : " " + when);
        } catch (IllegalArgumentException none) {
            return "; the run has no checkpoint yet" + (when.isEmpty() ? "" : ": start it again " + when);
        }
    }

    /**
     * The snapshot of the state after step {@code done}, taken at the next step's start: the data position a restart
     * from it goes on at is kept now. Returns the step to snapshot.
     */
    private int snapshot(int done, SnapshotPace pace) {
        pace.taken(done);
        snapshots.put(done, in.data().position());
        snapshots.keySet().removeIf(s -> s < done - 64L * pace.interval());
        return done;
    }

    /**
     * Sets every stage from the snapshot the run goes on from after a lost node; one that cannot be restored (its holder
     * was lost too) sends the run to its newest checkpoint instead.
     */
    private void restoreSnapshot(Engine engine) {
        try {
            engine.restore(in.start().snapshot());
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new NodesUnavailable("the snapshot of step " + in.start().step() + " could not be restored: " + e.getMessage());
        }
    }

    /** Evaluation: the mean loss over the validation sequences, in batches of the microbatch size. */
    private double validate(Engine engine) {
        // In the run's own batches where the replicas left split them: which sequences are evaluated depends on their size.
        int size = own.microbatchSize() % c.pipeline().replicas() == 0 ? own.microbatchSize() : c.microbatchSize();
        List<Batch> val = in.data().validation(size, c.run().evalSequences());
        // Fewer sequences than a microbatch: batches of one sequence a replica (RunInputs saw there are enough).
        if (val.isEmpty()) val = in.data().validation(c.pipeline().replicas(), c.run().evalSequences());
        return engine.validationLoss(val);
    }

    private static Map<String, Long> memory(Engine.Step st) {
        Map<String, Long> memory = new LinkedHashMap<>();
        st.memory().forEach((category, bytes) -> memory.put(category.key(), bytes));
        return memory;
    }

    /**
     * Checkpoint: the run's own files written here, the weights and optimizer state by the engine — in the
     * background for the pipeline, whose stages write their shards while the next steps run. The one before is
     * sealed first.
     */
    private void checkpoint(Engine engine, int done, Engine.Step st) throws IOException {
        seal(true);
        long bytes = Checkpoint.bytes(st.memory());
        Checkpoint.checkRoom(dir.path(), done, bytes);
        Path cp = Checkpoint.begin(dir.path(), done, in.model(), in.tokenizer(), in.data().position(), c);
        try {
            pending = new Pending(done, cp, engine.writeCheckpoint(done, cp, bytes));
        } catch (RuntimeException e) {
            throw failed("the checkpoint of step " + done, e, "", done);
        }
    }

    /**
     * Seals the checkpoint being written once its files are (waiting for them if {@code wait}), then prunes old
     * ones. One that could not be written is told and left incomplete; the run goes on, the previous one stands.
     */
    private void seal(boolean wait) throws IOException {
        if (pending == null || (!wait && !pending.written().isDone())) return;
        Pending p = pending;
        pending = null;
        List<CheckpointShard.File> files;
        try {
            files = p.written().join();
        } catch (CompletionException e) {
            if (e.getCause() instanceof java.io.UncheckedIOException u && u.getCause() instanceof UnwritableFile w) throw w;
            String why = "checkpoint " + dir.path().relativize(p.directory()) + " left incomplete: " + e.getCause().getMessage()
                    + "; the run goes on from the previous one";
            out.println(why);
            dir.history(why);
            Checkpoint.discardIncomplete(dir.path());
            return;
        }
        Checkpoint.seal(p.directory(), p.step(), files);
        Checkpoint.prune(dir.path(), c.run().keepCheckpoints());
    }

    /** Sets the engine's optimizer state from the checkpoint; state that does not fit the run is an error naming the file. */
    private void restore(Engine engine) {
        Path checkpoint = in.start().checkpoint();
        Map<String, float[]> state = Checkpoint.optimizerState(checkpoint);
        try {
            engine.restore(state);
        } catch (IllegalArgumentException e) {
            throw new ModelFileException(checkpoint, e.getMessage(), e);
        }
        // Only the names are compared; the engine's state is copied out once for them.
        java.util.Set<String> held = engine.optimizerState().keySet();
        if (!held.equals(state.keySet())) {
            throw new ModelFileException(checkpoint, "holds state for " + state.size() + " tensors, of which the run took "
                    + held.size() + ": it belongs to another model or optimizer");
        }
    }

    /** report.html, rewritten with what the run has done so far; a live one reloads itself in the browser. */
    private void report(Engine engine, boolean live) throws IOException {
        String model = c.model().name() + " (" + in.model().family().modelType() + ", "
                + String.format(Locale.ROOT, "%.1fM", in.model().parameters() / 1e6) + " parameters)";
        Map<String, String> facts = Report.facts(c, model, engine.describe(), points.size());
        facts.put("elapsed", String.format(Locale.ROOT, "%.0f s", seconds()));
        Report.write(dir.path(), "Relay training run " + dir.path().getFileName(), facts, Report.Marks.of(c, points.size()), live);
    }
}
