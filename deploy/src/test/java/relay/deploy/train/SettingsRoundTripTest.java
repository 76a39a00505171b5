package relay.deploy.train;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.typesafe.config.ConfigFactory;
import java.time.Duration;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializer;
import org.apache.pekko.serialization.Serializers;
import org.junit.jupiter.api.Test;
import relay.actors.PipelineConfig;
import relay.actors.PipelineSchedule;
import relay.actors.Placement;
import relay.actors.StageHost;
import relay.actors.StageSpec;
import relay.actors.UpdateMode;
import relay.optimizers.Clipping;
import relay.optimizers.Method;
import relay.optimizers.OptimizerSettings;
import relay.optimizers.OptimizerSettings.Adam;
import relay.optimizers.OptimizerSettings.Lisa;
import relay.optimizers.OptimizerSettings.LowRank;
import relay.optimizers.OptimizerSettings.LrSchedule;
import relay.stages.model.ModelConfig;
import relay.stages.model.Precision;
import relay.stages.tensor.DType;

/**
 * Every optimizer and pipeline setting goes from {@code relay.train} HOCON to the records and through the Protobuf a
 * stage's spec travels in, and comes back equal. No two values are alike (and each is exact in float32), so two fields
 * swapped anywhere on the way — in the binding, the records or either direction of the wire — cannot compare equal.
 */
class SettingsRoundTripTest {
    static final String GIVEN = """
            model = llama-tiny, data = corpus.txt, optimizer = adalomo, lr = 0.375, weight-decay = 0.25, beta1 = 0.625,
            beta2 = 0.875, eps = 0.0078125, clip-value = 6.5, clip-norm = 7.25, warmup = 8, steps = 90, lisa.gamma = 3,
            lisa.period = 11, rank = 12, rso-period = 13, galore.gap = 14, galore.scale = 0.1875, lora.alpha = 16.5, seed = 17,
            mode = exact, schedule = zb-h1, trace-steps = 18, step-timeout = 19s, recompute = true, dtype = bf16, activations = f32,
            threads-per-device = 21
            """;

    @Test
    void everySettingReachesItsOwnFieldFromHoconThroughTheWire() throws Exception {
        TrainConfig c = TrainConfig.from(ConfigFactory.parseString(GIVEN).atPath("relay.train").withFallback(ConfigFactory.load()).resolve());
        OptimizerSettings settings = new OptimizerSettings(0.375f, 0.25f, new Adam(0.625f, 0.875f, 0.0078125f), new Clipping(6.5f, 7.25f),
                new LrSchedule(8, 90), new Lisa(3, 11), new LowRank(12, 13, 14, 0.1875f, 16.5f), 17);
        PipelineConfig want = new PipelineConfig(new PipelineConfig.Training(Method.ADALOMO, settings, true),
                new PipelineConfig.Execution(UpdateMode.EXACT, PipelineSchedule.ZB_H1, 21, true, new Precision(DType.BF16, DType.F32)),
                new PipelineConfig.Limits(18, Duration.ofSeconds(19)),
                20);
        assertEquals(want, c.pipelineConfig(20), "bound from HOCON");
        // Weights and activations differ, so the two settings swapped would show.
        assertEquals(new Precision(DType.BF16, DType.F32), c.precision(), "precision bound from HOCON");

        ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "settings-round-trip");
        try {
            ModelConfig model = ModelConfig.named("llama-tiny");
            StageSpec spec = new StageSpec(1, 0, model, 17, null, new Placement(1, new int[model.layers() + 2]), c.pipelineConfig(20), 0);
            Serialization serialization = SerializationExtension.get(Adapter.toClassic(system));
            StageHost.Spawn sent = new StageHost.Spawn(spec, system.deadLetters(), 1);
            Serializer serializer = serialization.findSerializerFor(sent);
            StageHost.Spawn back = (StageHost.Spawn) serialization.deserialize(serializer.toBinary(sent), serializer.identifier(),
                    Serializers.manifestFor(serializer, sent)).get();
            assertEquals(want, back.spec().config(), "after the wire");
        } finally {
            system.terminate();
        }
    }
}
