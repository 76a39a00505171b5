package relay.deploy;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import relay.actors.UpdateMode;
import relay.actors.StageHost;
import relay.actors.bench.SimulateBench;

@Command(name = "simulate", mixinStandardHelpOptions = true,
        description = "The real stage actors and coordinator with hundreds of stages on simulated devices (kernels wait their "
                + "roofline time, no values): the coordinator's messages and load per step, the busiest actor's load, and the "
                + "measured bubble against the schedule's.")
final class SimulateBenchCommand implements Callable<Integer> {
    @Option(names = "--stages", description = "pipeline stages: embedding, stages − 2 blocks, head (default ${DEFAULT-VALUE})")
    int stages = 256;

    @Option(names = "--devices", description = "simulated devices, at most " + StageHost.MAX_DEVICES + " (default ${DEFAULT-VALUE})")
    int devices = 64;

    @Mixin
    PipelineOptions pipeline = new PipelineOptions(128, UpdateMode.EAGER);

    @Option(names = "--block-ms", description = "a block's forward time on a simulated device, ms (default ${DEFAULT-VALUE})")
    double blockMillis = 1.0;

    @Option(names = "--steps", description = "timed steps after one warm-up step (default ${DEFAULT-VALUE})")
    int steps = 2;

    @Option(names = "--lisa-gamma", description = "LISA (with LOMO) training this many blocks, drawn anew every step (default ${DEFAULT-VALUE}: off)")
    int lisaGamma = 0;

    @Mixin
    JsonOption json;

    @Override
    public Integer call() {
        Inputs.require(stages >= 3, "--stages", "≥ 3 (embedding, a block, head)", stages);
        Inputs.require(devices >= 1 && devices <= Math.min(StageHost.MAX_DEVICES, stages), "--devices", "between 1 and " + Math.min(StageHost.MAX_DEVICES, stages),
                devices);
        pipeline.check(0);
        Inputs.require(blockMillis > 0 && blockMillis <= 1000, "--block-ms", "> 0 and ≤ 1000", blockMillis);
        Inputs.require(steps >= 1, "--steps", "≥ 1", steps);
        Inputs.require(lisaGamma >= 0 && lisaGamma <= stages - 2, "--lisa-gamma", "between 0 and the " + (stages - 2) + " blocks", lisaGamma);
        int microbatches = pipeline.microbatches;
        String schedule = pipeline.schedule;
        System.out.printf("%d stages on %d simulated devices, %d microbatches, %s, a block's forward %.2f ms%s...%n", stages, devices,
                microbatches, schedule, blockMillis, lisaGamma > 0 ? ", LISA drawing " + lisaGamma + " blocks every step" : "");
        SimulateBench.Result r = SimulateBench.run(stages, devices, microbatches, pipeline.schedule(), pipeline.mode(), blockMillis, steps,
                lisaGamma);
        double step = Arrays.stream(r.stepSeconds()).sorted().toArray()[steps / 2];
        new Table("metric", "value")
                .row("step s (median), predicted", String.format("%.3f, %.3f", step, r.predictedStepSeconds()))
                .row("bubble measured, predicted", String.format("%.3f, %.3f", r.bubbleMeasured(), r.bubblePredicted()))
                .row("coordinator messages per step", r.coordinatorMessages())
                .row("coordinator load (handling time / step)", String.format("%.4f", r.coordinatorLoad()))
                .row("busiest actor, its load", String.format("%s, %.3f", r.busiestActor(), r.busiestActorLoad()))
                .print(System.out);
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("stages", stages);
        out.put("devices", devices);
        out.put("microbatches", microbatches);
        out.put("schedule", schedule);
        out.put("mode", pipeline.mode);
        out.put("lisa_gamma", lisaGamma);
        out.put("block_forward_ms", r.blockForwardMillis());
        out.put("step_seconds", r.stepSeconds());
        out.put("predicted_step_seconds", r.predictedStepSeconds());
        out.put("bubble_measured", r.bubbleMeasured());
        out.put("bubble_predicted", r.bubblePredicted());
        out.put("coordinator_messages_per_step", r.coordinatorMessages());
        out.put("coordinator_load", r.coordinatorLoad());
        out.put("busiest_actor", r.busiestActor());
        out.put("busiest_actor_load", r.busiestActorLoad());
        json.write(out);
        return 0;
    }
}
