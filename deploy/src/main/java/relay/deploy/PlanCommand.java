package relay.deploy;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import relay.actors.PipelineConfig;
import relay.actors.UpdateMode;
import relay.actors.plan.DeviceSpec;
import relay.actors.plan.Plan;
import relay.actors.plan.Planner;
import relay.optimizers.Method;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;

@Command(name = "plan", mixinStandardHelpOptions = true,
        description = "Plan training a model on devices you may not have: each device's stages and memory by category "
                + "(what the ledger would count), whether it fits, and the step time, bubble and tokens/s the schedule gives.")
final class PlanCommand implements Callable<Integer> {
    private static final double GIB = 1L << 30;

    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--devices", required = true, description = "COUNTxMEMORY[@FLOPS] (8x24GiB, 8x24GiB@71TFLOPS), "
            + "NODESxCOUNT:MEMORY[@FLOPS] (2x4:80GiB@790TFLOPS), or COUNTxcpu for this machine's CPU devices (its cores split among them); "
            + "FLOPS defaults to an RTX 3090's float32 35.6 TFLOPS")
    String devices;

    @Option(names = "--optimizer", description = "a method that runs in the pipeline (default ${DEFAULT-VALUE})")
    String optimizer = "lomo";

    /** Its microbatches are searched with --fit. */
    @Mixin
    PipelineOptions pipeline = new PipelineOptions(1, UpdateMode.EAGER);

    @Mixin
    DTypeOption dtype = new DTypeOption();

    @Option(names = "--replicas", description = "replicas of the pipeline (data parallelism), each on --devices ÷ replicas devices, "
            + "taking its share of every microbatch; exact mode unless --mode says otherwise (default ${DEFAULT-VALUE})")
    int replicas = 1;

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec command;

    @Option(names = "--recompute", description = "blocks keep only their input and recompute their activations in backward")
    boolean recompute;

    @Option(names = "--fit", description = "search placements, microbatch counts and recomputing for the fastest plan that fits; if none "
            + "does, say why and how many such nodes would do")
    boolean fit;

    @Option(names = "--memory-bandwidth", description = "each device's memory bandwidth, GB/s (default ${DEFAULT-VALUE}: an RTX 3090's)")
    double memoryBandwidth = 936;

    @Option(names = "--bus", description = "bandwidth between devices of a node, GB/s (default ${DEFAULT-VALUE}: PCIe 4.0 x16)")
    double bus = 25;

    @Option(names = "--link", description = "bandwidth between nodes, GB/s (default ${DEFAULT-VALUE}: 100 Gb/s Ethernet)")
    double link = 12.5;

    @Mixin
    JsonOption json;

    @Override
    public Integer call() {
        Inputs.require(replicas >= 1, "--replicas", "≥ 1", replicas);
        Inputs.require(replicas == 1 || !fit, "--replicas", "1 with --fit (the search plans one replica)", replicas);
        if (replicas > 1 && !command.commandLine().getParseResult().hasMatchedOption("--mode")) pipeline.mode = UpdateMode.EXACT.key();
        pipeline.check(fit ? 0 : modelOptions.batch);
        Inputs.require(memoryBandwidth > 0 && Double.isFinite(memoryBandwidth), "--memory-bandwidth", "> 0 GB/s", memoryBandwidth);
        Inputs.require(bus > 0 && Double.isFinite(bus), "--bus", "> 0 GB/s", bus);
        Inputs.require(link > 0 && Double.isFinite(link), "--link", "> 0 GB/s", link);
        ModelConfig cfg = modelOptions.config();
        DeviceSpec spec = Inputs.parsed("--devices", () -> DeviceSpec.parse(devices, memoryBandwidth * 1e9, bus * 1e9, link * 1e9,
                hostMemory()));
        relay.stages.model.Precision precision = dtype.precision();
        PipelineConfig pc = Inputs.parsed("--optimizer", () -> PipelineConfig.defaults(Method.named(optimizer), 1e-4f)
                .with(pipeline.mode(), pipeline.schedule()).withRecompute(recompute).withPrecision(precision));
        Inputs.require(spec.devices() % replicas == 0 && spec.devices() / replicas <= cfg.layers() + 2, "--devices",
                "at most the model's " + (cfg.layers() + 2) + " stages" + (replicas == 1 ? "" : " for each of " + replicas + " replicas, "
                        + "and a multiple of " + replicas), spec.devices());
        Inputs.require(replicas == 1 || (modelOptions.batch / pipeline.microbatches) % replicas == 0, "--replicas",
                "dividing each microbatch's " + modelOptions.batch / pipeline.microbatches + " sequences", replicas);
        System.out.printf("planning %s (%,d parameters), batch %d × seq %d, %s, %s, %s mode, %s weights and activations "
                        + "(gradients and optimizer state float32), on %s%s%n", modelOptions.model, cfg.parameters(), modelOptions.batch,
                modelOptions.seq, optimizer, pipeline.schedule, pipeline.mode, dtype.dtype().key(), spec,
                replicas == 1 ? "" : " in " + replicas + " replicas of " + spec.devices() / replicas + " devices");
        Map<String, Object> out = new LinkedHashMap<>();
        try (Planner planner = new Planner()) {
            if (!fit) {
                Plan p = planner.plan(cfg, spec, pc, modelOptions.batch, modelOptions.seq, pipeline.microbatches, replicas);
                print(p);
                out.put("plan", json(p));
            } else {
                Planner.Search found = planner.fit(cfg, spec, pc, modelOptions.batch, modelOptions.seq);
                print(found.best());
                out.put("fits", found.fits());
                out.put("plans_checked", found.tried());
                out.put("plan", json(found.best()));
                if (found.fits()) {
                    System.out.printf("fastest plan that fits, of the %d checked for memory: %d microbatches%n", found.tried(),
                            found.best().microbatches());
                } else {
                    System.out.println("does not fit: " + found.why());
                    Planner.Search more = planner.fewestNodes(cfg, spec, pc, modelOptions.batch, modelOptions.seq);
                    if (more == null) {
                        System.out.println("no number of such nodes fits it, up to one stage per device");
                    } else {
                        DeviceSpec enough = more.best().devices();
                        System.out.printf("%d such nodes (%d devices) would fit it; the fastest plan there:%n", enough.nodes(), enough.devices());
                        print(more.best());
                        out.put("fewest_nodes", enough.nodes());
                        out.put("fewest_nodes_plan", json(more.best()));
                    }
                }
            }
        }
        json.write(out);
        return 0;
    }

    private static long hostMemory() {
        return ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean())
                .getTotalMemorySize();
    }

    private static void print(Plan p) {
        // GiB where a device needs a GiB or more, MiB for small models.
        boolean large = p.need(p.fullest()) >= 1L << 30;
        String unit = large ? "GiB" : "MiB";
        double scale = large ? GIB : 1 << 20;
        java.util.function.LongFunction<String> size = b -> String.format(Locale.ROOT, "%.2f", b / scale);
        List<String> header = new ArrayList<>(List.of("device", "stages"));
        for (Category c : Category.values()) header.add(c.key() + " " + unit);
        header.addAll(List.of("total " + unit, "of " + unit, "fits"));
        Table t = new Table(header.toArray(String[]::new));
        for (int d = 0; d < p.memory().size(); d++) {
            List<Object> row = new ArrayList<>(List.of(d, p.stagesOn(d)));
            for (Category c : Category.values()) row.add(size.apply(p.memory().get(d).get(c)));
            row.addAll(List.of(size.apply(p.need(d)), size.apply(p.devices().memoryBytes()), p.fits(d) ? "yes" : "NO"));
            t.row(row.toArray());
        }
        t.print(System.out);
        long[] snapshots = p.snapshotBytes();
        if (java.util.Arrays.stream(snapshots).sum() > 0) {
            System.out.printf("snapshots in memory (a run on these %d nodes, snapshot-every on): host memory per node %s%n", snapshots.length,
                    java.util.Arrays.stream(snapshots).mapToObj(Plan::size).collect(java.util.stream.Collectors.joining(", ")));
        }
        int r = p.placement().replicas();
        System.out.printf(Locale.ROOT, "%d microbatch%s of %d%s%s: step %.3f s%s, bubble %.3f, %.1f tokens/s%n", p.microbatches(),
                p.microbatches() == 1 ? "" : "es",
                p.batch() / p.microbatches(), r == 1 ? "" : " (" + p.batch() / p.microbatches() / r + " to each of " + r + " replicas)",
                p.config().recompute() ? ", recomputing activations" : "", p.stepSeconds(),
                r == 1 ? "" : String.format(Locale.ROOT, p.config().mode() == UpdateMode.EAGER ? " (the replicas' exchange up to %.3f s after each microbatch's backward)"
                        : " (the replicas' exchange %.3f s of it)", exchangeSeconds(p)), p.bubble(), p.tokensPerSecond());
    }

    /** The replicas' exchange of one sum of the slowest device: once a step in exact mode, once a microbatch in eager mode. */
    private static double exchangeSeconds(Plan p) {
        return java.util.Arrays.stream(Planner.exchangeSeconds(p.model(), p.devices(), p.placement(), p.config())).max().orElse(0);
    }

    private static Map<String, Object> json(Plan p) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("devices", p.devices().devices());
        m.put("nodes", p.devices().nodes());
        m.put("device_memory_bytes", p.devices().memoryBytes());
        m.put("replicas", p.placement().replicas());
        m.put("microbatches", p.microbatches());
        m.put("recompute", p.config().recompute());
        m.put("weights_dtype", p.config().precision().weights().key());
        m.put("activations_dtype", p.config().precision().activations().key());
        m.put("placement", p.placement().deviceOfStage());
        m.put("snapshot_host_bytes_per_node", p.snapshotBytes());
        List<Map<String, Object>> per = new ArrayList<>();
        for (int d = 0; d < p.memory().size(); d++) {
            Map<String, Object> dev = new LinkedHashMap<>();
            dev.put("stages", p.stagesOn(d));
            dev.put("bytes", JsonOption.byCategory(p.memory().get(d)));
            dev.put("total_bytes", p.need(d));
            dev.put("fits", p.fits(d));
            per.add(dev);
        }
        m.put("per_device", per);
        m.put("fits", p.fits());
        m.put("step_seconds", p.stepSeconds());
        m.put("exchange_seconds", exchangeSeconds(p));
        m.put("bubble", p.bubble());
        m.put("tokens_per_s", p.tokensPerSecond());
        return m;
    }
}
