package relay.actors;

import com.typesafe.config.Config;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.ExecutionException;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.RecipientRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import relay.stages.io.CheckpointShard;
import relay.stages.io.SafeTensors;
import relay.stages.io.UnwritableFile;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;
import relay.stages.train.Batch;

/**
 * A model's pipeline: a coordinator of this JVM and the stage actors it has the nodes' hosts build from their
 * specs — on this JVM's devices, or on the worker nodes of a cluster ({@link Nodes}). Everything the caller
 * does — steps, evaluations, reading weights, optimizer state, traces and memory — is a request to the
 * coordinator or the hosts, answered by messages from the stages: nothing here touches a stage's tensors.
 */
public final class Pipeline implements AutoCloseable {
    private static final AtomicLong STARTED = new AtomicLong();
    private static final Duration STOP_TIMEOUT = Duration.ofSeconds(30);

    private final Nodes nodes;
    private final boolean ownsNodes;
    private final ActorRef<Coordinator.Command> coordinator;
    private final List<ActorRef<StageHost.Command>> hosts;
    private final Placement placement;
    private final Duration askTimeout;
    /** Bytes a second the slowest disk a checkpoint is written to is taken to take (a busy network file system). */
    private static final long SLOWEST_DISK = 10_000_000;
    /** The threads each device computes with, by device; known once the stages are built. */
    private int[] threadsOfDevice = new int[0];

    /** A snapshot in the nodes' memory, as the coordinator found it after a lost node: the holder of each stage's copy of one step. */
    public record Snapshot(List<StageEvent.SnapshotHeld> holders) {
        public Snapshot {
            holders = List.copyOf(holders);
        }

        public long step() {
            return holders.get(0).step();
        }
    }

    private Pipeline(Nodes nodes, boolean ownsNodes, ActorRef<Coordinator.Command> coordinator, List<ActorRef<StageHost.Command>> hosts,
                     Placement placement, PipelineConfig config) {
        this.nodes = nodes;
        this.ownsNodes = ownsNodes;
        this.coordinator = coordinator;
        this.hosts = hosts;
        this.placement = placement;
        // The coordinator's own deadlines come first; this one only guards against a coordinator that is gone.
        this.askTimeout = config.requestTimeout().plusMinutes(1);
    }

    /** A pipeline of a model initialized from the seed (the same weights as the plain loop's model of that seed), in this JVM. */
    public static Pipeline start(ModelConfig cfg, long seed, Placement placement, PipelineConfig pc, Config extraConfig) {
        return start(cfg, seed, null, placement, pc, extraConfig);
    }

    /**
     * A pipeline on {@code placement.devices()} CPU devices of this JVM, on nodes of its own ({@code extraConfig}
     * layered over the defaults; tests turn on serialize-messages there); see {@link #start(Nodes, ModelConfig, long,
     * Path, Placement, PipelineConfig)}.
     */
    public static Pipeline start(ModelConfig cfg, long seed, Path weights, Placement placement, PipelineConfig pc, Config extraConfig) {
        return startOwning(Nodes.local(extraConfig), cfg, seed, weights, placement, pc);
    }

    /** A pipeline of a model initialized from the seed on devices of this kind in this JVM (simulated ones, for a plan). */
    public static Pipeline start(DeviceKind kind, ModelConfig cfg, long seed, Placement placement, PipelineConfig pc) {
        return startOwning(Nodes.local(com.typesafe.config.ConfigFactory.empty(), kind), cfg, seed, null, placement, pc);
    }

    /** Starts on nodes this pipeline owns: it closes them when it stops, or when it cannot start. */
    private static Pipeline startOwning(Nodes nodes, ModelConfig cfg, long seed, Path weights, Placement placement, PipelineConfig pc) {
        try {
            return start(nodes, true, cfg, seed, weights, placement, pc);
        } catch (RuntimeException e) {
            nodes.close();
            throw e;
        }
    }

    /**
     * Starts a pipeline on these nodes, each stage building itself from its spec: from the seed, or reading
     * its tensors from the model directory {@code weights} (null: none). A directory that does not fit the
     * model is an {@link IllegalArgumentException} naming the file. The nodes outlive the pipeline.
     */
    public static Pipeline start(Nodes nodes, ModelConfig cfg, long seed, Path weights, Placement placement, PipelineConfig pc) {
        return start(nodes, false, cfg, seed, weights, placement, pc);
    }

    private static Pipeline start(Nodes nodes, boolean owns, ModelConfig cfg, long seed, Path weights, Placement placement,
                                  PipelineConfig pc) {
        List<ActorRef<StageHost.Command>> hostOfStage = new ArrayList<>();
        for (int a = 0; a < placement.actors(); a++) hostOfStage.add(nodes.hostOf(placement.deviceOfActor(a), placement.allDevices()));
        ActorRef<Coordinator.Command> coordinator = nodes.spawn(Coordinator.create(pc, placement), "coordinator-" + STARTED.incrementAndGet());
        Pipeline p = new Pipeline(nodes, owns, coordinator, hostOfStage.stream().distinct().toList(), placement, pc);
        try {
            long epoch = TraceRecorder.wallMicros();
            List<StageSpec> specs = new ArrayList<>();
            for (int a = 0; a < placement.actors(); a++) {
                specs.add(new StageSpec(placement.stageOf(a), placement.replicaOf(a), cfg, seed, weights, placement, pc, epoch));
            }
            List<StageEvent> ready = p.gather(to -> new Coordinator.Start(specs, hostOfStage, to));
            p.threadsOfDevice = new int[placement.allDevices()];
            for (StageEvent e : ready) {
                if (e instanceof StageEvent.Ready r) p.threadsOfDevice[placement.deviceOfActor(r.stage())] = r.threads();
            }
            return p;
        } catch (RuntimeException e) {
            p.stop();
            throw e;
        }
    }

    public Placement placement() {
        return placement;
    }

    /** The threads each device computes with, by device (each node splits its own cores; see {@link PipelineConfig.Execution}). */
    public int[] threadsOfDevice() {
        return threadsOfDevice.clone();
    }

    /** Runs one step over the microbatches and waits for it; a failed step comes back with its error. */
    public Coordinator.StepResult step(List<Batch> microbatches) {
        return step(microbatches, 0);
    }

    /**
     * The same, the stages first taking their copies for the snapshot of step {@code snapshotOf} (the steps done so
     * far; 0: none) into the nodes' memory, sent while the step runs.
     */
    public Coordinator.StepResult step(List<Batch> microbatches, long snapshotOf) {
        if (microbatches.isEmpty()) throw new IllegalArgumentException("a step needs at least one microbatch");
        evenShares(microbatches);
        if (snapshotOf > 0) singleReplica("snapshots in the nodes' memory");
        return ask(coordinator, to -> new Coordinator.RunStep(List.copyOf(microbatches), snapshotOf, to), "a step");
    }

    /** The mean loss of these batches with the current weights, forward only (the step does not advance). */
    public double evaluate(List<Batch> batches) {
        if (batches.isEmpty()) throw new IllegalArgumentException("an evaluation needs at least one batch");
        evenShares(batches);
        Coordinator.StepResult r = ask(coordinator, to -> new Coordinator.Evaluate(List.copyOf(batches), to), "an evaluation");
        if (!r.ok() && r.failure() == StageEvent.Failure.NODE_LOST) throw lost("evaluation failed: " + r.error());
        if (!r.ok()) throw new IllegalStateException("evaluation failed: " + r.error());
        return r.loss();
    }

    /** Each replica takes an equal share of every batch's sequences. */
    private void evenShares(List<Batch> batches) {
        for (Batch b : batches) {
            if (b.batch() % placement.replicas() != 0) {
                throw new IllegalArgumentException("a batch of " + b.batch() + " sequences does not split evenly over " + placement.replicas() + " replicas");
            }
        }
    }

    /** What a pipeline of several replicas does not do yet. */
    private void singleReplica(String what) {
        if (placement.replicas() > 1) throw new UnsupportedOperationException(what + " are not taken of a pipeline of several replicas yet");
    }

    /**
     * Every stage's parameters as named tensors, in stage order; a tied matrix once (the embedding's). With several
     * replicas, replica 0's, each other replica's checked to hold the very same values.
     */
    public List<SafeTensors.Tensor32> tensors() {
        List<List<SafeTensors.Tensor32>> byActor = weightsByStage();
        Map<String, SafeTensors.Tensor32> byName = new LinkedHashMap<>();
        for (int a = 0; a < byActor.size(); a++) {
            if (placement.replicaOf(a) == 0) {
                for (SafeTensors.Tensor32 t : byActor.get(a)) byName.putIfAbsent(t.name(), t);
            } else {
                sameAsFirstReplica(a, byActor.get(a), byActor.get(placement.stageOf(a)));
            }
        }
        return List.copyOf(byName.values());
    }

    private void sameAsFirstReplica(int actor, List<SafeTensors.Tensor32> mine, List<SafeTensors.Tensor32> first) {
        for (int i = 0; i < mine.size(); i++) {
            if (!Arrays.equals(mine.get(i).values(), first.get(i).values())) {
                throw new IllegalStateException(placement.stageName(actor) + " holds other values of " + mine.get(i).name()
                        + " than replica 0: the replicas diverged");
            }
        }
    }

    /** Each stage's parameters, by stage. */
    private List<List<SafeTensors.Tensor32>> weightsByStage() {
        Map<Integer, List<TensorPart>> parts = new TreeMap<>();
        for (StageEvent e : gather(to -> new Coordinator.Collect(Coordinator.What.WEIGHTS, to))) {
            StageEvent.Weights w = (StageEvent.Weights) e;
            parts.computeIfAbsent(w.stage(), s -> new ArrayList<>()).addAll(w.parts());
        }
        return parts.values().stream().map(TensorPart::assemble).toList();
    }

    /** Every parameter's values by name (between steps). */
    public Map<String, float[]> weights() {
        Map<String, float[]> w = new LinkedHashMap<>();
        for (SafeTensors.Tensor32 t : tensors()) w.put(t.name(), t.values());
        return w;
    }

    /** The head's replica of a tied token table, or null. */
    public float[] tiedReplica() {
        List<List<SafeTensors.Tensor32>> stages = weightsByStage();
        String table = stages.get(0).get(0).name();
        return stages.get(stages.size() - 1).stream().filter(t -> t.name().equals(table)).findFirst()
                .map(SafeTensors.Tensor32::values).orElse(null);
    }

    /** Every stage's optimizer state, "parameter/role" → values (between steps). */
    public Map<String, float[]> optimizerState() {
        List<TensorPart> parts = new ArrayList<>();
        for (StageEvent e : gather(to -> new Coordinator.Collect(Coordinator.What.OPTIMIZER_STATE, to))) {
            parts.addAll(((StageEvent.OptimizerState) e).parts());
        }
        return new TreeMap<>(TensorPart.assembleValues(parts));
    }

    /**
     * Sets every stage's optimizer state from {@link #optimizerState()}'s values of an earlier run (between
     * steps, before the first step of a resumed run). Values that no stage takes are an error: the state
     * does not belong to this pipeline's model or optimizer.
     */
    public void restoreOptimizerState(Map<String, float[]> values) {
        gather(to -> new Coordinator.Restore(Map.copyOf(values), to));
    }

    /**
     * Checkpoint {@code step} into {@code directory}: returns once every stage holds its copy (the next step may
     * start), with what completes when every stage has written and synced its {@link CheckpointShard}: the files, or the
     * failure that leaves the checkpoint incomplete: a node lost ({@link NodesUnavailable}), or a stage's file that could not be
     * written (an {@link UnwritableFile}, as a stage told it). {@code bytes}, about what the stages write, sets how long
     * the answer may take: as long as the slowest disk a run is taken to write to ({@link #SLOWEST_DISK}) needs for them.
     */
    public CompletableFuture<List<CheckpointShard.File>> writeShards(long step, Path directory, long bytes) {
        gather(to -> new Coordinator.WriteShards(step, directory.toAbsolutePath().toString(), to));
        // The coordinator answers when the shards are written or cannot be: a lost node is what it waits out. Given up
        // sooner, the checkpoint would be cleared away while its stages still write into it.
        Duration patience = askTimeout.plusSeconds(bytes / SLOWEST_DISK);
        return AskPattern.<Coordinator.Command, Coordinator.Gathered>ask(coordinator, to -> new Coordinator.AwaitShards(step, to),
                        patience, nodes.system().scheduler()).toCompletableFuture()
                .thenApply(g -> {
                    if (g.failure() == StageEvent.Failure.NODE_LOST) throw new NodesUnavailable(g.error());
                    if (!g.ok()) throw new java.io.UncheckedIOException(new UnwritableFile(g.error()));
                    return g.events().stream().flatMap(e -> ((StageEvent.ShardWritten) e).files().stream()).toList();
                });
    }

    /**
     * Sets every stage's weights and optimizer state from a snapshot an earlier pipeline on these nodes took (before
     * the first step); a holder that no longer has it, or a snapshot that does not fit a stage, is an error.
     */
    public void restoreSnapshot(Snapshot snapshot) {
        singleReplica("snapshots in the nodes' memory");
        for (StageEvent.SnapshotHeld h : snapshot.holders()) {
            if (!nodes.alive(h.holder())) {
                throw new NodesUnavailable("node " + Nodes.hostPort(h.holder().path().address()) + ", which holds the snapshot of step "
                        + snapshot.step() + " of " + placement.stageName(h.stage()) + ", is gone too");
            }
        }
        gather(to -> new Coordinator.RestoreSnapshot(snapshot.holders(), to));
    }

    /** The newest snapshot in the nodes' memory that every stage still has a holder of (on a node not lost), or null. */
    public Snapshot newestSnapshot() {
        Coordinator.Gathered g = ask(coordinator, Coordinator.FindSnapshot::new, "the snapshots");
        if (!g.ok()) return null;
        return new Snapshot(g.events().stream().map(e -> (StageEvent.SnapshotHeld) e).toList());
    }

    /**
     * The failure of a node lost during a request, with the snapshot the run can go on from (or none). A loss seen by
     * its broken connection may come before the cluster has the node down: that is waited for (a few seconds at
     * most), so that the snapshot found has no holder on it.
     */
    public NodesUnavailable lost(String error) {
        boolean cluster = hosts.get(0).path().address().hasGlobalScope();
        long deadline = System.nanoTime() + LOSS_SHOWS.toNanos();
        while (cluster && hosts.stream().allMatch(nodes::alive) && System.nanoTime() < deadline) pause();
        Snapshot s = newestSnapshot();
        while (s != null && s.holders().stream().anyMatch(h -> !nodes.alive(h.holder())) && System.nanoTime() < deadline) {
            pause();
            s = newestSnapshot();
        }
        return new NodesUnavailable(error, s);
    }

    /** How long a lost node may take to show as down after its connections broke. */
    private static final Duration LOSS_SHOWS = Duration.ofSeconds(5);

    private static void pause() {
        try {
            Thread.sleep(50);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for a lost node to show", e);
        }
    }

    /** Every stage's trace events recorded so far (each stage's buffer starts empty again). */
    public List<TraceEvent> trace() {
        List<TraceEvent> all = new ArrayList<>();
        for (StageEvent e : gather(to -> new Coordinator.Collect(Coordinator.What.TRACE, to))) all.addAll(((StageEvent.Trace) e).events());
        return all;
    }

    /** Writes the trace as Chrome/Perfetto JSON: one process per device (named with its node), one track per actor. */
    public void writeTrace(Path file) throws IOException {
        Map<Integer, String> names = new LinkedHashMap<>();
        for (int d = 0; d < placement.allDevices(); d++) {
            names.put(d, "device " + d + " (cpu" + d + ", " + nodes.nodeOf(d, placement.allDevices()) + ")");
        }
        ChromeTrace.write(file, trace(), names);
    }

    /**
     * Each device's peak bytes per category since the last call (or the start), by device, and under
     * {@link StageHost#IN_FLIGHT} the bytes each node received and no device had taken yet, and under
     * {@link StageHost#SNAPSHOTS} the snapshots the nodes hold, each summed over the nodes.
     */
    public Map<Integer, Map<Category, Long>> memoryPeaks() {
        Map<Integer, Map<Category, Long>> all = new TreeMap<>();
        for (ActorRef<StageHost.Command> h : hosts) {
            ask(h, StageHost.ReportMemory::new, "the devices' memory").peaks().forEach((d, peaks) -> all.merge(d, peaks, (a, b) -> {
                Map<Category, Long> sum = new java.util.EnumMap<>(Category.class);
                a.forEach((c, v) -> sum.merge(c, v, Long::sum));
                b.forEach((c, v) -> sum.merge(c, v, Long::sum));
                return sum;
            }));
        }
        return all;
    }

    /** The stages' answers to a coordinator's request; a refusal is an error naming why (input: IllegalArgumentException). */
    private List<StageEvent> gather(Function<ActorRef<Coordinator.Gathered>, Coordinator.Command> request) {
        Coordinator.Gathered g = ask(coordinator, request, "the stages");
        if (g.ok()) return g.events();
        if (g.failure() == StageEvent.Failure.INPUT) throw new IllegalArgumentException(g.error());
        if (g.failure() == StageEvent.Failure.NODE_LOST) throw lost(g.error());
        throw new IllegalStateException(g.error());
    }

    private <Q, R> R ask(RecipientRef<Q> to, Function<ActorRef<R>, Q> request, String what) {
        try {
            return AskPattern.<Q, R>ask(to, request::apply, askTimeout, nodes.system().scheduler()).toCompletableFuture().get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for " + what, e);
        } catch (ExecutionException e) {
            throw new IllegalStateException("no answer for " + what + ": " + e.getCause(), e.getCause());
        }
    }

    /** Ends the pipeline: its coordinator, then its stages (they free their tensors); nodes it started are closed too. */
    @Override
    public void close() {
        stop();
        if (ownsNodes) nodes.close();
    }

    /** The coordinator, then every host's stages; a host that does not answer in time is on a node that is gone, with its stages. */
    private void stop() {
        nodes.stop(coordinator);
        List<java.util.concurrent.CompletableFuture<StageHost.DeviceMemory>> stopping = new ArrayList<>();
        for (ActorRef<StageHost.Command> h : hosts) {
            if (!nodes.alive(h)) continue;
            stopping.add(AskPattern.<StageHost.Command, StageHost.DeviceMemory>ask(h, StageHost.StopStages::new, STOP_TIMEOUT,
                    nodes.system().scheduler()).toCompletableFuture());
        }
        for (var f : stopping) {
            try {
                f.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } catch (ExecutionException gone) {
                // Its node is gone: nothing of this pipeline is left there.
            }
        }
    }
}
