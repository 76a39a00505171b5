package relay.actors.plan;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import relay.actors.Coordinator;
import relay.actors.DeviceKind;
import relay.actors.Nodes;
import relay.actors.Pipeline;
import relay.actors.PipelineConfig;
import relay.actors.Placement;
import relay.actors.ScheduleSimulation;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;
import relay.stages.model.Precision;
import relay.stages.tensor.sim.Roofline;
import relay.stages.train.Batch;

/**
 * Plans a model's training on devices without them. Memory is what the ledger counts: the real stages are built
 * and stepped once on simulated devices, which allocate exactly what real ones would and hold no values. Time
 * is the schedule played out ({@link ScheduleSimulation}) with each stage's cost — measured on this machine for
 * CPU devices, a roofline's for others (with the update of each weight gradient in eager mode; an exact mode's
 * update once a step is left out) — plus each activation's and gradient's transfer between devices.
 */
public final class Planner implements AutoCloseable {
    /** Simulated devices for the memory runs; their speed does not matter there. */
    public static final DeviceKind MEMORY_ONLY = DeviceKind.simulated(new Roofline(1e12, 1e12, 0), 0);

    private final Nodes nodes = Nodes.local(com.typesafe.config.ConfigFactory.empty(), MEMORY_ONLY);

    /** The stages' costs to place them by: measured one at a time on this machine's CPU, or the devices' roofline's. */
    public static StageCosts costs(ModelConfig cfg, DeviceSpec spec, int microbatchSize, int seq) {
        return costs(cfg, spec, microbatchSize, seq, Precision.F32);
    }

    /** The same for a model stored in {@code precision}. */
    public static StageCosts costs(ModelConfig cfg, DeviceSpec spec, int microbatchSize, int seq, Precision precision) {
        if (spec.cpu()) requireRoomHere(cfg, spec, precision);
        return spec.cpu() ? StageCosts.measure(cfg, microbatchSize, seq, precision, spec.cpuThreads())
                : StageCosts.modelled(cfg, microbatchSize, seq, spec.roofline(), precision);
    }

    /**
     * The stages' costs to time a placement by: the roofline's, or on CPU devices what each stage's own spans took
     * in a traced calibration run of the real pipeline ({@link #calibrate}). There the devices share the machine's
     * cores, caches and memory bandwidth as they will; costs measured one device at a time missed by 10–40% here.
     */
    public static StageCosts stepCosts(ModelConfig cfg, DeviceSpec spec, Placement placement, PipelineConfig pc, int batch, int seq,
                                       int microbatches) {
        if (!spec.cpu()) {
            // In eager mode each weight gradient is applied as it comes, so its update is part of the stage's work.
            if (pc.mode() != relay.actors.UpdateMode.EAGER) {
                return StageCosts.modelled(cfg, batch / microbatches, seq, spec.roofline(), pc.recompute(), null, pc.precision());
            }
            try (relay.optimizers.UpdateRule rule = pc.method().training(List.of(), pc.settings()).rule()) {
                return StageCosts.modelled(cfg, batch / microbatches, seq, spec.roofline(), pc.recompute(), rule, pc.precision());
            }
        }
        requireRoomHere(cfg, spec, pc.precision());
        PipelineConfig calibrating = pc.withThreadsPerDevice(spec.cpuThreads()).withTraceSteps(pc.firstStep() + 2 + CALIBRATION_STEPS);
        try (Pipeline p = Pipeline.start(cfg, 1, placement, calibrating, com.typesafe.config.ConfigFactory.empty())) {
            return calibrate(p, batches(cfg, batch / microbatches, seq, microbatches), pc.firstStep(), placement.stages()).costs();
        }
    }

    /** A plan on CPU devices runs the model here to time it: refused at once when its parameters alone cannot fit. */
    private static void requireRoomHere(ModelConfig cfg, DeviceSpec spec, Precision precision) {
        long parameters = parameterBytes(cfg, precision), machine = spec.memoryBytes() * spec.devices();
        if (parameters > machine) {
            throw new IllegalArgumentException("a plan on CPU devices runs the model here to time it, and its parameters alone ("
                    + Plan.size(parameters) + ") exceed this machine's memory (" + Plan.size(machine) + "): plan it for other devices");
        }
    }

    /** Steps a calibration times, after two that warm the JIT compiler: enough to even out the machine's own swings. */
    public static final int CALIBRATION_STEPS = 8;

    /** What a calibration found: the stages' costs, and the timed steps they come from. */
    public record Calibration(StageCosts costs, List<Coordinator.StepResult> steps) {}

    /**
     * Steps a pipeline traced from {@code firstStep} over the same microbatches: two warm-up steps, then
     * {@link #CALIBRATION_STEPS} whose spans give each stage's mean forward, backward and weights.
     */
    public static Calibration calibrate(Pipeline p, List<Batch> data, long firstStep, int stages) {
        List<Coordinator.StepResult> timed = new ArrayList<>();
        for (int s = 0; s < 2 + CALIBRATION_STEPS; s++) {
            Coordinator.StepResult r = p.step(data);
            if (!r.ok()) throw new IllegalStateException("the calibration step failed: " + r.error());
            if (s >= 2) timed.add(r);
        }
        return new Calibration(StageCosts.fromTrace(p.trace(), firstStep + 2, stages), timed);
    }

    /**
     * Each device's peak bytes per category over building the stages and one step of {@code microbatches}
     * microbatches of {@code batch / microbatches} sequences: the real stages and coordinator on simulated devices.
     */
    public List<Map<Category, Long>> memory(ModelConfig cfg, Placement placement, PipelineConfig pc, int batch, int seq, int microbatches) {
        try (Pipeline p = Pipeline.start(nodes, cfg, 1, null, placement, pc)) {
            Coordinator.StepResult r = p.step(batches(cfg, batch / microbatches, seq, microbatches));
            if (!r.ok()) throw new IllegalStateException("the planned step failed: " + r.error());
            List<Map<Category, Long>> out = new ArrayList<>();
            p.memoryPeaks().forEach((d, peaks) -> {
                // The host keeps devices an earlier plan made; only this placement's count (not the JVM's bytes in flight or its snapshots).
                if (d >= 0 && d < placement.allDevices()) out.add(new EnumMap<>(peaks));
            });
            return out;
        }
    }

    /** The step played out: the schedule with these stage costs, each device also sending its activations and gradients. */
    public static ScheduleSimulation.Outcome time(ModelConfig cfg, DeviceSpec spec, StageCosts costs, Placement placement,
                                                  PipelineConfig pc, int microbatchSize, int seq, int microbatches) {
        return time(cfg, spec, costs, placement, pc, microbatchSize, seq, microbatches, new double[placement.devices()]);
    }

    /**
     * The same with device d waiting {@code exchange[d]} seconds after each microbatch's weight gradients (its W where
     * the schedule splits backward, else its backward, whose message has left): eager replicas settle every backward's
     * sums before the device's next action.
     */
    private static ScheduleSimulation.Outcome time(ModelConfig cfg, DeviceSpec spec, StageCosts costs, Placement placement,
                                                   PipelineConfig pc, int microbatchSize, int seq, int microbatches, double[] exchange) {
        ScheduleSimulation.DeviceCosts[] devices = ScheduleSimulation.deviceCosts(placement, costs.forward(), costs.backward(),
                costs.weights(), pc.schedule());
        // What crosses is the residual stream (forward) or its gradient (backward), stored in the activations' dtype.
        double bytes = (double) microbatchSize * seq * cfg.hidden() * pc.precision().activations().bytes();
        for (int d = 0; d < devices.length; d++) {
            double forwardSend = d + 1 < devices.length ? spec.sendSeconds(d, bytes) : 0;
            double backwardSend = d > 0 ? spec.sendSeconds(d - 1, bytes) : 0;
            ScheduleSimulation.DeviceCosts c = devices[d];
            devices[d] = new ScheduleSimulation.DeviceCosts(c.forward() + forwardSend, c.backward() + backwardSend, c.weights(), exchange[d]);
        }
        return ScheduleSimulation.run(pc.schedule(), devices, microbatches);
    }

    /** The plan of one configuration; a null placement is balanced by the stages' costs. */
    public Plan plan(ModelConfig cfg, DeviceSpec spec, PipelineConfig pc, int batch, int seq, int microbatches, Placement placement) {
        Placement pl = placement != null ? placement
                : Placement.balanced(costs(cfg, spec, batch / microbatches, seq, pc.precision()).total(), spec.devices());
        StageCosts costs = stepCosts(cfg, spec, pl, pc, batch, seq, microbatches);
        ScheduleSimulation.Outcome t = time(cfg, spec, costs, pl, pc, batch / microbatches, seq, microbatches);
        return new Plan(cfg, spec, pc, batch, seq, microbatches, pl, memory(cfg, pl, pc, batch, seq, microbatches), t.stepTime(), t.bubble());
    }

    /**
     * The plan of {@code replicas} replicas of a pipeline on {@code spec.devices() / replicas} devices each, every
     * replica taking 1/replicas of each microbatch's sequences. Memory is the replicated stages' on simulated devices
     * (each replica keeps the optimizer state of the parameters it owns); the step is one replica's schedule with its
     * share of the batch and the replicas' exchange ({@link #exchangeSeconds}): in exact mode once, after the schedule
     * (this plan does not overlap them), in eager mode after every microbatch's weight gradients, on each device's
     * own work.
     */
    public Plan plan(ModelConfig cfg, DeviceSpec spec, PipelineConfig pc, int batch, int seq, int microbatches, int replicas) {
        if (replicas == 1) return plan(cfg, spec, pc, batch, seq, microbatches, (Placement) null);
        if (spec.devices() % replicas != 0 || (batch / microbatches) % replicas != 0) {
            throw new IllegalArgumentException(replicas + " replicas need the devices (" + spec.devices() + ") and each microbatch's sequences ("
                    + batch / microbatches + ") to split evenly among them");
        }
        int share = batch / replicas;
        Placement one = Placement.balanced(costs(cfg, spec, share / microbatches, seq, pc.precision()).total(), spec.devices() / replicas);
        StageCosts costs = stepCosts(cfg, spec, one, pc, share, seq, microbatches);
        Placement all = one.withReplicas(replicas);
        double[] exchange = exchangeSeconds(cfg, spec, all, pc);
        boolean eager = pc.mode() == relay.actors.UpdateMode.EAGER;
        ScheduleSimulation.Outcome t = time(cfg, spec, costs, one, pc, share / microbatches, seq, microbatches,
                eager ? exchange : new double[exchange.length]);
        double after = eager ? 0 : java.util.Arrays.stream(exchange).max().orElse(0);
        return new Plan(cfg, spec, pc, batch, seq, microbatches, all, memory(cfg, all, pc, batch, seq, microbatches),
                t.stepTime() + after, t.bubble());
    }

    /**
     * The replicas' exchange of one sum of each device of a replica: each replica passes on (R − 1)/R of its stages'
     * float32 gradients along the chains to their owners and takes (R − 1)/R of their weights back, over the link between nodes where a
     * stage's replicas span nodes, else the bus (CPU devices of one machine: no time). Every parameter is counted as
     * trained, an upper bound for LISA's frozen blocks and LoRA's base weights.
     */
    public static double[] exchangeSeconds(ModelConfig cfg, DeviceSpec spec, Placement placement, PipelineConfig pc) {
        double[] out = new double[placement.devices()];
        if (spec.cpu() || placement.replicas() == 1) return out;
        double[] params = stageParameters(cfg);
        double share = (placement.replicas() - 1) / (double) placement.replicas();
        for (int d = 0; d < placement.devices(); d++) {
            double bytes = 0;
            for (int s = placement.firstOnDevice(d); s <= placement.lastOnDevice(d); s++) {
                bytes += params[s] * (Float.BYTES + pc.precision().weights().bytes()) * share;
            }
            boolean spansNodes = spec.nodeOf(d) != spec.nodeOf(placement.deviceOfActor(placement.actor(placement.replicas() - 1, placement.firstOnDevice(d))));
            out[d] = bytes / (spansNodes ? spec.linkBytesPerSecond() : spec.busBytesPerSecond());
        }
        return out;
    }

    /** What a search found: the fastest plan that fits, or the one needing the least memory and why none fits. */
    public record Search(Plan best, boolean fits, int tried, String why) {}

    /**
     * The fastest plan that fits these devices, over microbatch counts (every divisor of the batch), placements
     * (balanced by time, by parameters, and by both) and recomputing or keeping the blocks' activations. Candidates
     * are timed first, then checked for memory fastest first, so only the memory of the slower ones that must be
     * checked is.
     */
    public Search fit(ModelConfig cfg, DeviceSpec spec, PipelineConfig pc, int batch, int seq) {
        record Candidate(PipelineConfig pc, int microbatches, Placement placement, double stepSeconds, double bubble) {}
        List<Candidate> candidates = new ArrayList<>();
        double[] params = stageParameters(cfg);
        for (int m = 1; m <= batch; m++) {
            if (batch % m != 0) continue;
            double[] time = costs(cfg, spec, batch / m, seq, pc.precision()).total();
            List<Placement> placements = new ArrayList<>();
            for (double[] weight : List.of(time, params, mix(time, params))) {
                Placement pl = Placement.balanced(weight, spec.devices());
                if (placements.stream().noneMatch(q -> java.util.Arrays.equals(q.deviceOfStage(), pl.deviceOfStage()))) placements.add(pl);
            }
            for (PipelineConfig c : List.of(pc.withRecompute(false), pc.withRecompute(true))) {
                // A roofline's costs do not depend on the placement; a CPU calibration runs each placement.
                StageCosts modelled = spec.cpu() ? null : stepCosts(cfg, spec, placements.get(0), c, batch, seq, m);
                for (Placement pl : placements) {
                    StageCosts costs = spec.cpu() ? stepCosts(cfg, spec, pl, c, batch, seq, m) : modelled;
                    ScheduleSimulation.Outcome t = time(cfg, spec, costs, pl, c, batch / m, seq, m);
                    candidates.add(new Candidate(c, m, pl, t.stepTime(), t.bubble()));
                }
            }
        }
        candidates.sort(Comparator.comparingDouble(Candidate::stepSeconds));
        Plan lightest = null;
        int tried = 0;
        for (Candidate c : candidates) {
            tried++;
            Plan p = new Plan(cfg, spec, c.pc(), batch, seq, c.microbatches(), c.placement(),
                    memory(cfg, c.placement(), c.pc(), batch, seq, c.microbatches()), c.stepSeconds(), c.bubble());
            if (p.fits()) return new Search(p, true, tried, "");
            if (lightest == null || p.need(p.fullest()) < lightest.need(lightest.fullest())) lightest = p;
        }
        int d = lightest.fullest();
        return new Search(lightest, false, tried, String.format(java.util.Locale.ROOT,
                "no placement, microbatch count or recomputing fits: at best device %d (%s) needs %s of %s, of which parameters %s",
                d, lightest.stagesOn(d), Plan.size(lightest.need(d)), Plan.size(spec.memoryBytes()),
                Plan.size(lightest.memory().get(d).get(Category.PARAMETERS))));
    }

    /**
     * The fewest nodes like {@code spec}'s, more than it has, on which some plan fits, with that plan; null when
     * none does before there are more devices than stages. Counts too small for the parameters alone are skipped.
     */
    public Search fewestNodes(ModelConfig cfg, DeviceSpec spec, PipelineConfig pc, int batch, int seq) {
        int stages = cfg.layers() + 2;
        double nodeBytes = (double) spec.memoryBytes() * spec.perNode();
        int from = Math.max(spec.nodes() + 1, (int) Math.ceil(parameterBytes(cfg, pc.precision()) / nodeBytes));
        for (int n = from; n * spec.perNode() <= stages; n++) {
            Search s = fit(cfg, spec.withNodes(n), pc, batch, seq);
            if (s.fits()) return s;
        }
        return null;
    }

    /** The model's parameters' bytes in its weights' dtype: a floor on the memory of any plan. */
    public static long parameterBytes(ModelConfig cfg, Precision precision) {
        return cfg.parameters() * precision.weights().bytes();
    }

    /** Each stage's parameters, from the model's shape. */
    static double[] stageParameters(ModelConfig cfg) {
        int stages = cfg.layers() + 2;
        double[] p = new double[stages];
        java.util.Arrays.fill(p, cfg.blockParameters());
        p[0] = cfg.embeddingParameters();
        p[stages - 1] = cfg.headParameters();
        return p;
    }

    /** Two costs, each as a share of its own total, added. */
    private static double[] mix(double[] a, double[] b) {
        double sa = java.util.Arrays.stream(a).sum(), sb = java.util.Arrays.stream(b).sum();
        double[] out = new double[a.length];
        for (int i = 0; i < a.length; i++) out[i] = a[i] / sa + b[i] / sb;
        return out;
    }

    /** {@code microbatches} microbatches of token ids spread over the vocabulary, each next id its target. */
    public static List<Batch> batches(ModelConfig cfg, int microbatchSize, int seq, int microbatches) {
        List<Batch> out = new ArrayList<>();
        for (int j = 0; j < microbatches; j++) {
            int n = microbatchSize * seq;
            int[] in = new int[n], target = new int[n];
            for (int i = 0; i < n; i++) {
                in[i] = (int) (((long) (j * n + i) * 7919) % cfg.vocabSize());
                target[i] = (int) (((long) (j * n + i + 1) * 7919) % cfg.vocabSize());
            }
            out.add(new Batch(in, target, microbatchSize, seq));
        }
        return out;
    }

    @Override
    public void close() {
        nodes.close();
    }
}
