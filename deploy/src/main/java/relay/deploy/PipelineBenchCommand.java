package relay.deploy;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import relay.actors.UpdateMode;
import relay.actors.bench.PipelineBench;
import relay.stages.model.ModelConfig;

@Command(name = "pipeline", mixinStandardHelpOptions = true,
        description = "The actor pipeline on several CPU devices against the plain loop on the same total threads.")
final class PipelineBenchCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--devices", description = "CPU devices (default ${DEFAULT-VALUE})")
    int devices = 2;

    @Option(names = "--threads-per-device", description = "threads each device computes with; the plain loop gets them all together "
            + "(default ${DEFAULT-VALUE})")
    int threadsPerDevice = 1;

    @Option(names = "--replicas", description = "also run this many replicas of a pipeline on --devices ÷ replicas devices each, every "
            + "replica taking its share of each microbatch (default ${DEFAULT-VALUE}: none)")
    int replicas = 1;

    @Mixin
    PipelineOptions pipeline = new PipelineOptions(4, UpdateMode.EAGER);

    @Option(names = "--steps", description = "timed steps after one warm-up step (default ${DEFAULT-VALUE})")
    int steps = 3;

    @Option(names = "--clip-norm", description = "clip by global norm (a norm-only pass per step; exact mode for several microbatches)")
    float clipNorm = 0f;

    @Option(names = "--trace", description = "write the pipeline's trace (Chrome/Perfetto JSON) to this file")
    Path trace;

    @Option(names = "--nodes", description = "also run the pipeline on a cluster of this many JVMs on loopback, started here: "
            + "this one coordinates, nodes − 1 workers hold the devices (default ${DEFAULT-VALUE}: this JVM only)")
    int nodes = 1;

    @Mixin
    JsonOption json;

    @Override
    public Integer call() throws Exception {
        Inputs.require(devices >= 1, "--devices", "≥ 1", devices);
        Inputs.require(threadsPerDevice >= 1, "--threads-per-device", "≥ 1", threadsPerDevice);
        pipeline.check(modelOptions.batch);
        Inputs.require(steps >= 1, "--steps", "≥ 1", steps);
        Inputs.require(nodes >= 1 && nodes - 1 <= devices, "--nodes", "≥ 1, with no more workers than --devices " + devices, nodes);
        Inputs.require(clipNorm >= 0 && Float.isFinite(clipNorm), "--clip-norm", "a finite number ≥ 0 (0: off)", clipNorm);
        Inputs.writableFile(trace, "--trace");
        int microbatches = pipeline.microbatches;
        Inputs.require(replicas >= 1 && devices % replicas == 0, "--replicas", "≥ 1 and dividing --devices " + devices, replicas);
        Inputs.require(replicas == 1 || (modelOptions.batch / microbatches) % replicas == 0, "--replicas",
                "dividing each microbatch's " + modelOptions.batch / microbatches + " sequences", replicas);
        String schedule = pipeline.schedule, mode = pipeline.mode;
        ModelConfig cfg = modelOptions.config();
        Inputs.require(devices <= cfg.layers() + 2, "--devices", "at most the model's " + (cfg.layers() + 2) + " stages", devices);
        System.out.printf("%s, batch %d × seq %d in %d microbatches, %s, %s mode, %d devices × %d thread(s): plain loop first, then the pipeline%s...%n",
                modelOptions.model, modelOptions.batch, modelOptions.seq, microbatches, schedule, mode, devices, threadsPerDevice,
                replicas == 1 ? "" : ", then " + replicas + " replicas × " + devices / replicas + " device(s)");
        PipelineBench.Result r;
        try (LoopbackCluster.Workers cluster = new LoopbackCluster.Workers(nodes)) {
            r = PipelineBench.run(cfg, modelOptions.batch, modelOptions.seq, devices, threadsPerDevice, replicas, microbatches, pipeline.schedule(), pipeline.mode(),
                    steps, trace, clipNorm,
                    nodes > 1 ? cluster::start : null);
        }
        Table table = new Table("metric", "value")
                .row("placement (device of each stage)", Arrays.toString(r.placement().deviceOfStage()))
                .row("pipeline tokens/s", String.format("%.1f", r.tokensPerSecond()))
                .row("plain loop tokens/s (same threads)", String.format("%.1f", r.referenceTokensPerSecond()))
                .row("ratio", String.format("%.3f", r.tokensPerSecond() / r.referenceTokensPerSecond()));
        if (nodes > 1) {
            table.row("pipeline on " + nodes + " JVMs tokens/s", String.format("%.1f", r.clusterTokensPerSecond()))
                    .row("cluster / one JVM", String.format("%.3f", r.clusterTokensPerSecond() / r.tokensPerSecond()));
        }
        PipelineBench.Replicated rep = r.replicated();
        if (rep != null) {
            table.row(replicas + " replicas × " + devices / replicas + " device(s) tokens/s", String.format("%.1f", rep.tokensPerSecond()))
                    .row("replicas / one pipeline", String.format("%.3f", rep.tokensPerSecond() / r.tokensPerSecond()))
                    .row("replicas / plain loop", String.format("%.3f", rep.tokensPerSecond() / r.referenceTokensPerSecond()))
                    .row("replicas' bubble measured", String.format("%.3f", rep.bubbleMeasured()))
                    .row("replicas' busy fraction per device", fractions(rep.busyFractionPerDevice()));
        }
        table
                .row("bubble measured", String.format("%.3f", r.bubbleMeasured()))
                .row("bubble theory (p-1)/(m+p-1)", String.format("%.3f", r.bubbleTheory()))
                .row("bubble theory from measured F, B, W", String.format("%.3f", r.bubbleSimulated()))
                .row("block F / B / W ms", String.format("%.1f / %.1f / %.1f", 1e3 * r.costs().forward()[1], 1e3 * r.costs().backward()[1],
                        1e3 * r.costs().weights()[1]))
                .row("embedding F / B ms, head ms", String.format("%.1f / %.1f, %.1f", 1e3 * r.costs().forward()[0],
                        1e3 * r.costs().backward()[0], 1e3 * r.costs().forward()[r.costs().forward().length - 1]))
                .row("busy fraction per device", fractions(r.busyFractionPerDevice()))
                .row("staleness max", r.stalenessMax())
                .print(System.out);
        if (trace != null) System.out.println("trace: " + trace + " (open in ui.perfetto.dev)");
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("model", modelOptions.model);
        out.put("batch", modelOptions.batch);
        out.put("seq", modelOptions.seq);
        out.put("devices", devices);
        out.put("threads_per_device", threadsPerDevice);
        out.put("microbatches", microbatches);
        out.put("schedule", schedule);
        out.put("mode", mode);
        out.put("clip_norm", clipNorm);
        out.put("tokens_per_s", r.tokensPerSecond());
        out.put("reference_tokens_per_s", r.referenceTokensPerSecond());
        out.put("nodes", nodes);
        if (nodes > 1) {
            out.put("cluster_tokens_per_s", r.clusterTokensPerSecond());
            out.put("cluster_ratio", r.clusterTokensPerSecond() / r.tokensPerSecond());
        }
        out.put("bubble_measured", r.bubbleMeasured());
        out.put("bubble_theory", r.bubbleTheory());
        out.put("bubble_theory_measured_costs", r.bubbleSimulated());
        out.put("stage_forward_ms", Arrays.stream(r.costs().forward()).map(v -> v * 1e3).toArray());
        out.put("stage_backward_input_ms", Arrays.stream(r.costs().backward()).map(v -> v * 1e3).toArray());
        out.put("stage_backward_weights_ms", Arrays.stream(r.costs().weights()).map(v -> v * 1e3).toArray());
        out.put("staleness_max", r.stalenessMax());
        out.put("placement", r.placement().deviceOfStage());
        out.put("busy_fraction_per_device", r.busyFractionPerDevice());
        out.put("pipeline_step_seconds", r.pipelineStepSeconds());
        out.put("reference_step_seconds", r.referenceStepSeconds());
        out.put("replicas", replicas);
        if (rep != null) {
            out.put("replicas_tokens_per_s", rep.tokensPerSecond());
            out.put("replicas_placement", rep.placement().deviceOfStage());
            out.put("replicas_bubble_measured", rep.bubbleMeasured());
            out.put("replicas_busy_fraction_per_device", rep.busyFractionPerDevice());
            out.put("replicas_step_seconds", rep.stepSeconds());
        }
        json.write(out);
        return 0;
    }

    private static String fractions(double[] v) {
        return Arrays.toString(Arrays.stream(v).mapToObj(f -> String.format("%.3f", f)).toArray());
    }
}
