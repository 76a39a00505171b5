package relay.deploy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import relay.actors.Coordinator;
import relay.actors.Nodes;
import relay.actors.Pipeline;
import relay.actors.PipelineConfig;
import relay.actors.PipelineSchedule;
import relay.actors.Placement;
import relay.actors.UpdateMode;
import relay.optimizers.Method;
import relay.stages.model.ModelConfig;
import relay.stages.train.Batch;
import relay.stages.train.SyntheticData;

/**
 * Two replicas of a two-device pipeline on three JVMs of this machine's loopback (this one coordinating, two workers
 * holding the four devices), so that the replicas' gradients and weights cross between nodes through the tensor
 * channel: bit-identical to the same replicas in one JVM, and to float32 rounding the one-replica run with the whole
 * microbatches.
 */
class ReplicasAcrossJvmsTest {
    private static final long SEED = 3;

    /** Exact mode settles each sum once a step; eager mode (LOMO's) after every backward, each stage waiting for its weights. */
    @ParameterizedTest(name = "{0}, {1}")
    @CsvSource({"exact, adalomo", "eager, lomo"})
    @Timeout(300)
    void twoReplicasOnThreeJvmsEqualThemInOneJvm(String mode, String method) throws Exception {
        ModelConfig cfg = ModelConfig.named("llama-tiny");
        List<List<Batch>> data = new ArrayList<>();
        SyntheticData d = new SyntheticData(cfg.vocabSize(), 2, 16, 0.2, 7);
        for (int s = 0; s < 3; s++) data.add(List.of(d.next(), d.next()));
        PipelineConfig pc = PipelineConfig.defaults(Method.named(method), 0.02f).with(UpdateMode.parse(mode), PipelineSchedule.ONE_F_ONE_B);
        Placement one = Placement.balanced(new double[cfg.layers() + 2], 2);
        Map<String, float[]> single, local, cluster;
        try (Pipeline p = Pipeline.start(cfg, SEED, one, pc, ConfigFactory.empty())) {
            single = run(p, data);
        }
        try (Pipeline p = Pipeline.start(cfg, SEED, one.withReplicas(2), pc, ConfigFactory.empty())) {
            local = run(p, data);
        }
        try (LoopbackCluster.Workers workers = new LoopbackCluster.Workers(3)) {
            Nodes nodes = workers.start();
            try (Pipeline p = Pipeline.start(nodes, cfg, SEED, null, one.withReplicas(2), pc)) {
                cluster = run(p, data);
            }
        }
        assertEquals(local.keySet(), cluster.keySet());
        local.forEach((name, w) -> assertArrayEquals(w, cluster.get(name), name + ": bit for bit"));
        single.forEach((name, w) -> assertArrayEquals(w, local.get(name), 2e-6f, name));
    }

    private static Map<String, float[]> run(Pipeline p, List<List<Batch>> data) {
        for (List<Batch> step : data) {
            Coordinator.StepResult r = p.step(step);
            assertTrue(r.ok(), r.error());
        }
        return p.weights();
    }
}
