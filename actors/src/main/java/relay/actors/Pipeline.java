package relay.actors;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.RecipientRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import relay.stages.io.SafeTensors;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;
import relay.stages.train.Batch;

/**
 * A model's pipeline on devices of this machine: one stage host owning the devices, the stage actors it
 * spawns from their specs, and the coordinator. Everything the caller does — steps, evaluations, reading
 * weights, optimizer state, traces and memory — is a request to the coordinator or the host, answered by
 * messages from the stages: nothing here touches a stage's tensors.
 */
public final class Pipeline implements AutoCloseable {
    private final ActorSystem<Void> system;
    private final ActorRef<Coordinator.Command> coordinator;
    private final ActorRef<StageHost.Command> host;
    private final Placement placement;
    private final Duration askTimeout;

    private Pipeline(ActorSystem<Void> system, ActorRef<Coordinator.Command> coordinator, ActorRef<StageHost.Command> host,
                     Placement placement, PipelineConfig config) {
        this.system = system;
        this.coordinator = coordinator;
        this.host = host;
        this.placement = placement;
        // The coordinator's own deadlines come first; this one only guards against a coordinator that is gone.
        this.askTimeout = config.requestTimeout().plusMinutes(1);
    }

    /** A pipeline of a model initialized from the seed (the same weights as the plain loop's model of that seed). */
    public static Pipeline start(ModelConfig cfg, long seed, Placement placement, PipelineConfig pc, Config extraConfig) {
        return start(cfg, seed, null, placement, pc, extraConfig);
    }

    /**
     * Starts the actors on {@code placement.devices()} CPU devices, each stage building itself from its spec:
     * from the seed, or reading its tensors from the model directory {@code weights} (null: none). A
     * directory that does not fit the model is an {@link IllegalArgumentException} naming the file.
     * {@code extraConfig} is layered over the defaults (tests turn on serialize-messages there).
     */
    public static Pipeline start(ModelConfig cfg, long seed, Path weights, Placement placement, PipelineConfig pc, Config extraConfig) {
        List<Integer> devices = new ArrayList<>();
        for (int d = 0; d < placement.devices(); d++) devices.add(d);
        Config config = extraConfig.withFallback(StageHost.dispatchers(devices)).withFallback(ConfigFactory.load());
        CompletableFuture<List<ActorRef<?>>> refs = new CompletableFuture<>();
        ActorSystem<Void> system = ActorSystem.create(Behaviors.setup(ctx -> {
            refs.complete(List.of(ctx.spawn(Coordinator.create(pc, placement), "coordinator"),
                    ctx.spawn(StageHost.create(devices, pc.threadsPerDevice()), "host")));
            return Behaviors.empty();
        }), "relay", config);
        try {
            List<ActorRef<?>> r = refs.get(60, TimeUnit.SECONDS);
            @SuppressWarnings("unchecked")
            Pipeline p = new Pipeline(system, (ActorRef<Coordinator.Command>) r.get(0), (ActorRef<StageHost.Command>) r.get(1),
                    placement, pc);
            long epoch = TraceRecorder.wallMicros();
            List<StageSpec> specs = new ArrayList<>();
            for (int s = 0; s < placement.stages(); s++) specs.add(new StageSpec(s, cfg, seed, weights, placement, pc, epoch));
            p.gather(to -> new Coordinator.Start(specs, Collections.nCopies(specs.size(), p.host), to));
            return p;
        } catch (InterruptedException | ExecutionException | TimeoutException | RuntimeException e) {
            system.terminate();
            if (e instanceof RuntimeException re) throw re;
            throw new IllegalStateException("the pipeline's actors did not start", e);
        }
    }

    public Placement placement() {
        return placement;
    }

    /** Runs one step over the microbatches and waits for it; a failed step comes back with its error. */
    public Coordinator.StepResult step(List<Batch> microbatches) {
        if (microbatches.isEmpty()) throw new IllegalArgumentException("a step needs at least one microbatch");
        return ask(coordinator, to -> new Coordinator.RunStep(List.copyOf(microbatches), to), "a step");
    }

    /** The mean loss of these batches with the current weights, forward only (the step does not advance). */
    public double evaluate(List<Batch> batches) {
        if (batches.isEmpty()) throw new IllegalArgumentException("an evaluation needs at least one batch");
        Coordinator.StepResult r = ask(coordinator, to -> new Coordinator.Evaluate(List.copyOf(batches), to), "an evaluation");
        if (!r.ok()) throw new IllegalStateException("evaluation failed: " + r.error());
        return r.loss();
    }

    /** Every stage's parameters as named tensors, in stage order; a tied matrix once (the embedding's). */
    public List<SafeTensors.Tensor32> tensors() {
        Map<String, SafeTensors.Tensor32> byName = new LinkedHashMap<>();
        for (List<SafeTensors.Tensor32> stage : weightsByStage()) for (SafeTensors.Tensor32 t : stage) byName.putIfAbsent(t.name(), t);
        return List.copyOf(byName.values());
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

    /** Every stage's trace events recorded so far (each stage's buffer starts empty again). */
    public List<TraceEvent> trace() {
        List<TraceEvent> all = new ArrayList<>();
        for (StageEvent e : gather(to -> new Coordinator.Collect(Coordinator.What.TRACE, to))) all.addAll(((StageEvent.Trace) e).events());
        return all;
    }

    /** Writes the trace as Chrome/Perfetto JSON, one process per device and one track per actor. */
    public void writeTrace(Path file) throws IOException {
        Map<Integer, String> names = new LinkedHashMap<>();
        for (int d = 0; d < placement.devices(); d++) names.put(d, "device " + d + " (cpu" + d + ")");
        ChromeTrace.write(file, trace(), names);
    }

    /** Each device's peak bytes per category since the last call (or the start), by device. */
    public Map<Integer, Map<Category, Long>> memoryPeaks() {
        return ask(host, StageHost.ReportMemory::new, "the devices' memory").peaks();
    }

    /** The stages' answers to a coordinator's request; a refusal is an error naming why (input: IllegalArgumentException). */
    private List<StageEvent> gather(Function<ActorRef<Coordinator.Gathered>, Coordinator.Command> request) {
        Coordinator.Gathered g = ask(coordinator, request, "the stages");
        if (g.ok()) return g.events();
        if (g.failure() == StageEvent.Failure.INPUT) throw new IllegalArgumentException(g.error());
        throw new IllegalStateException(g.error());
    }

    private <Q, R> R ask(RecipientRef<Q> to, Function<ActorRef<R>, Q> request, String what) {
        try {
            return AskPattern.<Q, R>ask(to, request::apply, askTimeout, system.scheduler()).toCompletableFuture().get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for " + what, e);
        } catch (ExecutionException e) {
            throw new IllegalStateException("no answer for " + what + ": " + e.getCause(), e.getCause());
        }
    }

    @Override
    public void close() {
        system.terminate();
        try {
            system.getWhenTerminated().toCompletableFuture().get(60, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (ExecutionException | TimeoutException e) {
            throw new IllegalStateException("the pipeline's actors did not stop", e);
        }
    }
}
