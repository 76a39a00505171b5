package relay.actors;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import relay.optimizers.LisaPolicy;
import relay.optimizers.Method;
import relay.stages.layers.Parameter;
import relay.stages.layers.TransformerBlock;
import relay.stages.model.Embedding;
import relay.stages.model.Initializer;
import relay.stages.model.LmHead;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.Device;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.train.Batch;

/**
 * A model split into stage actors on devices of this machine, each device with its own single-threaded
 * dispatcher and its own backend. The caller runs steps and reads results; between steps it may read
 * weights and the trace.
 */
public final class Pipeline implements AutoCloseable {
    private final ActorSystem<Void> system;
    private final ActorRef<Coordinator.Command> coordinator;
    private final List<ActorRef<StageActor.Command>> stages;
    private final List<CpuDevice> devices;
    private final List<List<Parameter>> stageParameters;
    private final Placement placement;
    private final PipelineConfig config;
    private final Duration askTimeout;

    private Pipeline(ActorSystem<Void> system, ActorRef<Coordinator.Command> coordinator, List<ActorRef<StageActor.Command>> stages,
                     List<CpuDevice> devices, List<List<Parameter>> stageParameters, Placement placement, PipelineConfig config) {
        this.system = system;
        this.coordinator = coordinator;
        this.stages = stages;
        this.devices = devices;
        this.stageParameters = stageParameters;
        this.placement = placement;
        this.config = config;
        this.askTimeout = config.stepTimeout().plusMinutes(1);
    }

    /** The dispatcher of one device: one thread, so the device's stages never compute at the same time. */
    static String dispatcher(int device) {
        return "relay-device-" + device;
    }

    /**
     * Builds the stages of a freshly initialized model (the same weights as {@link Model#initialize} with the
     * seed) on {@code placement.devices()} CPU devices and starts their actors. {@code extraConfig} is
     * layered over the defaults (tests turn on serialize-messages there).
     */
    public static Pipeline start(ModelConfig cfg, long seed, Placement placement, PipelineConfig pc, Config extraConfig) {
        if (placement.stages() != cfg.layers() + 2) {
            throw new IllegalArgumentException("placement of " + placement.stages() + " stages for a model of " + (cfg.layers() + 2));
        }
        StringBuilder dispatchers = new StringBuilder();
        for (int d = 0; d < placement.devices(); d++) {
            dispatchers.append(dispatcher(d)).append(" { type = Dispatcher, executor = \"thread-pool-executor\", ")
                    .append("thread-pool-executor { fixed-pool-size = 1 }, throughput = 100 }\n");
        }
        Config config = extraConfig.withFallback(ConfigFactory.parseString(dispatchers.toString())).withFallback(ConfigFactory.load());
        List<CpuDevice> devices = new ArrayList<>();
        for (int d = 0; d < placement.devices(); d++) devices.add(new CpuDevice("cpu" + d, pc.threadsPerDevice()));
        List<StageActor.Work> works = new ArrayList<>();
        List<List<Parameter>> params = new ArrayList<>();
        boolean tied = cfg.tiedEmbeddings();
        int last = cfg.layers() + 1;
        Embedding embedding = Embedding.create(cfg, new Initializer(devices.get(placement.device(0)), seed));
        works.add(new StageActor.Work(embedding, null, null));
        for (int i = 0; i < cfg.layers(); i++) {
            TransformerBlock b = Model.block(cfg, i, new Initializer(devices.get(placement.device(i + 1)), seed));
            works.add(new StageActor.Work(null, b, null));
        }
        Initializer headInit = new Initializer(devices.get(placement.device(last)), seed);
        // With tied embeddings the head keeps a replica of the token table on its own device.
        LmHead head = LmHead.create(cfg, headInit, tied ? Embedding.tokenTable(cfg, headInit) : null);
        works.add(new StageActor.Work(null, null, head));
        for (StageActor.Work w : works) params.add(w.parameters());

        LisaPolicy lisa = pc.lisa() ? new LisaPolicy(cfg.layers(), Math.min(pc.settings().lisaGamma(), cfg.layers()),
                pc.settings().lisaPeriod(), pc.settings().seed()) : null;
        long epoch = System.nanoTime();
        CompletableFuture<List<Object>> ready = new CompletableFuture<>();
        ActorSystem<Void> system = ActorSystem.create(Behaviors.setup(ctx -> {
            ActorRef<Coordinator.Command> coord = ctx.spawn(
                    Coordinator.create(placement, pc.settings().clipping(), lisa, pc.stepTimeout(), pc.firstStep()), "coordinator");
            List<ActorRef<StageActor.Command>> refs = new ArrayList<>();
            for (int s = 0; s <= last; s++) {
                int d = placement.device(s);
                StageActor.Work w = works.get(s);
                String name = s == 0 ? "embedding" : s == last ? "head" : "block-" + (s - 1);
                var optimizer = new StageOptimizer(pc.method().rule(pc.settings()), pc.settings().schedule(),
                        pc.settings().clipping(), pc.mode(),
                        !tied ? null : s == 0 ? w.embedding().tokenTable() : s == last ? w.head().weight() : null);
                var layout = new StageActor.Layout(pc.schedule(), d, placement.devices());
                refs.add(ctx.spawn(StageActor.create(s, name, devices.get(d), w, tied, layout, optimizer, coord,
                        new TraceRecorder(pc.traceSteps(), name, d, s, epoch)), name, DispatcherSelector.fromConfig(dispatcher(d))));
            }
            for (int s = 0; s <= last; s++) {
                int first = s, end = s;
                while (first > 0 && placement.device(first - 1) == placement.device(s)) first--;
                while (end < last && placement.device(end + 1) == placement.device(s)) end++;
                // The head's backward is fused into its forward: the last backward on its device is the stage before it.
                int lastBackward = end == last ? last - 1 : end;
                refs.get(s).tell(new StageActor.Connect(s > 0 ? refs.get(s - 1) : null, s < last ? refs.get(s + 1) : null,
                        refs.get(0), refs.get(last), refs.get(first), refs.get(end),
                        lastBackward >= first ? refs.get(lastBackward) : null));
            }
            coord.tell(new Coordinator.Attach(List.copyOf(refs)));
            ready.complete(List.of(coord, List.copyOf(refs)));
            return Behaviors.empty();
        }), "relay", config);
        try {
            List<Object> r = ready.get(60, TimeUnit.SECONDS);
            @SuppressWarnings("unchecked")
            ActorRef<Coordinator.Command> coord = (ActorRef<Coordinator.Command>) r.get(0);
            @SuppressWarnings("unchecked")
            List<ActorRef<StageActor.Command>> refs = (List<ActorRef<StageActor.Command>>) r.get(1);
            return new Pipeline(system, coord, refs, devices, params, placement, pc);
        } catch (InterruptedException | ExecutionException | TimeoutException e) {
            system.terminate();
            throw new IllegalStateException("the pipeline's actors did not start", e);
        }
    }

    public Placement placement() {
        return placement;
    }

    public List<CpuDevice> devices() {
        return List.copyOf(devices);
    }

    /** Runs one step over the microbatches and waits for it; a failed step comes back with its error. */
    public Coordinator.StepResult step(List<Batch> microbatches) {
        if (microbatches.isEmpty()) throw new IllegalArgumentException("a step needs at least one microbatch");
        if (config.settings().clipping().byNorm() && config.mode() == UpdateMode.EAGER && microbatches.size() > 1) {
            throw new IllegalArgumentException("clipping by global norm in eager mode needs one microbatch per step "
                    + "(each microbatch is its own update); use exact mode for " + microbatches.size());
        }
        try {
            return AskPattern.<Coordinator.Command, Coordinator.StepResult>ask(coordinator,
                    replyTo -> new Coordinator.RunStep(List.copyOf(microbatches), replyTo), askTimeout, system.scheduler())
                    .toCompletableFuture().get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for a step", e);
        } catch (ExecutionException e) {
            throw new IllegalStateException("step did not complete: " + e.getCause(), e.getCause());
        }
    }

    /** Every stage's trace events recorded so far (each stage's buffer starts empty again). */
    public List<TraceEvent> trace() {
        List<TraceEvent> all = new ArrayList<>();
        for (StageActor.TraceDump d : askEach(StageActor.CollectTrace::new, "collecting the trace of")) all.addAll(d.events());
        return all;
    }

    /** Every stage's optimizer state, "parameter/role" → values (between steps). */
    public Map<String, float[]> optimizerState() {
        Map<String, float[]> all = new java.util.TreeMap<>();
        for (StageActor.StateDump d : askEach(StageActor.CollectState::new, "collecting the optimizer state of")) all.putAll(d.values());
        return all;
    }

    /**
     * Sets every stage's optimizer state from {@link #optimizerState()}'s values of an earlier run (between
     * steps, before the first step of a resumed run). Values that no stage takes are an error: the state
     * does not belong to this pipeline's model or optimizer.
     */
    public void restoreOptimizerState(Map<String, float[]> values) {
        java.util.Set<String> taken = new java.util.HashSet<>();
        Map<String, float[]> copy = Map.copyOf(values);
        for (StageActor.Restored r : askEach((ActorRef<StageActor.Restored> to) -> new StageActor.RestoreState(copy, to),
                "restoring the optimizer state of")) {
            if (r.error() != null) throw new IllegalArgumentException("optimizer state: " + r.error());
            taken.addAll(r.held());
        }
        List<String> left = values.keySet().stream().filter(k -> !taken.contains(k)).sorted().limit(5).toList();
        if (!left.isEmpty()) throw new IllegalArgumentException("optimizer state no stage of this pipeline holds: " + left);
    }

    /** Asks every stage in turn and gathers the replies. */
    private <R> List<R> askEach(java.util.function.Function<ActorRef<R>, StageActor.Command> message, String what) {
        List<R> replies = new ArrayList<>();
        for (ActorRef<StageActor.Command> s : stages) {
            try {
                replies.add(AskPattern.ask(s, message::apply, Duration.ofSeconds(60), system.scheduler()).toCompletableFuture().get());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            } catch (ExecutionException e) {
                throw new IllegalStateException(what + " " + s.path().name(), e);
            }
        }
        return replies;
    }

    /** Writes the trace as Chrome/Perfetto JSON, one process per device and one track per actor. */
    public void writeTrace(Path file) throws IOException {
        Map<Integer, String> names = new LinkedHashMap<>();
        for (int d = 0; d < devices.size(); d++) names.put(d, "device " + d + " (" + devices.get(d).name() + ")");
        ChromeTrace.write(file, trace(), names);
    }

    /**
     * Every parameter's values by name, read between steps (never while one runs). A tied matrix appears
     * under its name once (the embedding's); {@link #tiedReplica()} gives the head's copy.
     */
    public Map<String, float[]> weights() {
        Map<String, float[]> w = new LinkedHashMap<>();
        for (List<Parameter> ps : stageParameters) for (Parameter p : ps) w.putIfAbsent(p.name(), p.value().toArray());
        return w;
    }

    /**
     * Sets every parameter from values by name — a loaded model or checkpoint — between steps only. Both
     * replicas of a tied matrix get the same values.
     */
    public void loadWeights(Map<String, float[]> values) {
        for (List<Parameter> ps : stageParameters) {
            for (Parameter p : ps) {
                float[] v = values.get(p.name());
                if (v == null || v.length != p.size()) {
                    throw new IllegalArgumentException("no values of the right size for " + p.name());
                }
                p.value().copyFrom(v);
            }
        }
    }

    /** The head's replica of a tied token table, or null. */
    public float[] tiedReplica() {
        List<Parameter> head = stageParameters.get(stageParameters.size() - 1);
        String table = stageParameters.get(0).get(0).name();
        return head.stream().filter(p -> p.name().equals(table)).findFirst().map(p -> p.value().toArray()).orElse(null);
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
        java.util.Set<Parameter> freed = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        for (List<Parameter> ps : stageParameters) for (Parameter p : ps) if (freed.add(p)) p.close();
        devices.forEach(CpuDevice::close);
    }
}
