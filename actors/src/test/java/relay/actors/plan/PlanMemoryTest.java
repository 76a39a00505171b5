package relay.actors.plan;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import relay.actors.Coordinator;
import relay.actors.Pipeline;
import relay.actors.PipelineConfig;
import relay.actors.PipelineSchedule;
import relay.actors.Placement;
import relay.actors.UpdateMode;
import relay.optimizers.Method;
import relay.optimizers.OptimizerSettings;
import relay.stages.memory.Category;
import relay.stages.model.ModelConfig;

/**
 * The plan's memory is the ledger's: for several models, optimizers, schedules, modes and placements, each
 * device's per-category peaks planned on simulated devices equal, byte for byte, those a run of the same
 * step on CPU devices counts. With one microbatch a step the order of everything is fixed and every category is
 * equal. With more, an activation sent to the next device is counted on the sender until the receiver takes it,
 * which depends on when the receiver gets to it: there the activations' peaks may differ by what is in flight
 * (at most a message per microbatch) and every other category is equal.
 */
@Timeout(300)
class PlanMemoryTest {
    private static Planner planner;

    @BeforeAll
    static void open() {
        planner = new Planner();
    }

    @AfterAll
    static void close() {
        planner.close();
    }

    static Stream<Arguments> cases() {
        return Stream.of(
                Arguments.of("gpt2-tiny", "adamw", false, "1f1b", "exact", new int[] {0, 0, 1, 1}, 4),
                Arguments.of("gpt2-tiny", "lomo", false, "gpipe", "eager", new int[] {0, 0, 0, 1}, 2),
                Arguments.of("llama-tiny", "adalomo", false, "zb-h1", "eager", new int[] {0, 0, 1, 1}, 4),
                Arguments.of("llama-tiny", "adamw", true, "1f1b", "exact", new int[] {0, 1, 1, 1}, 2),
                Arguments.of("llama-tiny", "lomo", false, "1f1b", "eager", new int[] {0, 0, 1, 1}, 1),
                Arguments.of("gpt2-tiny", "adamw", false, "gpipe", "exact", new int[] {0, 1, 1, 2}, 1),
                Arguments.of("llama-tiny", "adalomo", true, "zb-h1", "exact", new int[] {0, 0, 1, 2}, 1),
                Arguments.of("gpt2-tiny", "lisa-adalomo", true, "1f1b", "eager", new int[] {0, 1}, 1),
                Arguments.of("llama-tiny", "recompute-lomo", false, "1f1b", "eager", new int[] {0, 0, 1, 1}, 1),
                Arguments.of("gpt2-tiny", "recompute-adamw", false, "zb-h1", "exact", new int[] {0, 1, 1, 1}, 2));
    }

    @ParameterizedTest(name = "{0} {1} lisa={2} {3} {4} {5} m={6}")
    @MethodSource("cases")
    void plannedPeaksEqualTheLedgersOfARealRun(String model, String optimizer, boolean lisa, String schedule, String mode,
                                               int[] blocksOnDevices, int microbatches) {
        ModelConfig cfg = ModelConfig.named(model);
        int[] deviceOfStage = new int[cfg.layers() + 2];
        for (int s = 0; s < deviceOfStage.length; s++) deviceOfStage[s] = blocksOnDevices[s * blocksOnDevices.length / deviceOfStage.length];
        deviceOfStage[deviceOfStage.length - 1] = blocksOnDevices[blocksOnDevices.length - 1];
        Placement placement = new Placement(deviceOfStage[deviceOfStage.length - 1] + 1, deviceOfStage);
        boolean recompute = optimizer.startsWith("recompute-");
        Method method = Method.named(optimizer.replace("recompute-", ""));
        PipelineConfig pc = PipelineConfig.defaults(method, 1e-3f).with(UpdateMode.valueOf(mode.toUpperCase(java.util.Locale.ROOT)),
                PipelineSchedule.parse(schedule)).withRecompute(recompute);
        if (lisa) pc = pc.withSettings(pc.settings().withLisa(new OptimizerSettings.Lisa(1, 5)), true);
        int batch = 4, seq = 16;

        List<Map<Category, Long>> measured = new ArrayList<>();
        double[] losses;
        try (Pipeline p = Pipeline.start(cfg, 1, placement, pc, ConfigFactory.empty())) {
            Coordinator.StepResult r = p.step(Planner.batches(cfg, batch / microbatches, seq, microbatches));
            assertTrue(r.ok(), r.error());
            losses = r.losses();
            p.memoryPeaks().forEach((d, peaks) -> {
                if (d >= 0) measured.add(new EnumMap<>(peaks));
            });
        }
        List<Map<Category, Long>> planned = planner.memory(cfg, placement, pc, batch, seq, microbatches);
        // With several microbatches a device's activations include what it sent and the next has not taken yet: up to a message each.
        long message = (long) batch / microbatches * seq * cfg.hidden() * Float.BYTES, inFlight = microbatches == 1 ? 0 : microbatches * message;
        if (recompute) {
            // Recomputing changes where memory goes, not the numbers: the same step without it has the same losses, and holds more.
            List<Map<Category, Long>> kept = planner.memory(cfg, placement, pc.withRecompute(false), batch, seq, microbatches);
            try (Pipeline p = Pipeline.start(cfg, 1, placement, pc.withRecompute(false), ConfigFactory.empty())) {
                assertArrayEquals(p.step(Planner.batches(cfg, batch / microbatches, seq, microbatches)).losses(), losses);
            }
            long keptAll = 0, recomputedAll = 0;
            for (int d = 0; d < kept.size(); d++) {
                assertTrue(kept.get(d).get(Category.ACTIVATIONS) + inFlight >= planned.get(d).get(Category.ACTIVATIONS), "device " + d);
                keptAll += kept.get(d).get(Category.ACTIVATIONS);
                recomputedAll += planned.get(d).get(Category.ACTIVATIONS);
            }
            assertTrue(keptAll > recomputedAll, "recomputing saves activations");
        }
        assertEquals(placement.devices(), planned.size());
        for (Map<Category, Long> device : planned) {
            assertTrue(device.get(Category.PARAMETERS) > 0 && device.get(Category.ACTIVATIONS) > 0, "devices hold weights and activations");
        }
        if (microbatches == 1) {
            assertEquals(measured, planned);
        } else {
            for (int d = 0; d < planned.size(); d++) {
                long gap = Math.abs(planned.get(d).get(Category.ACTIVATIONS) - measured.get(d).get(Category.ACTIVATIONS));
                assertTrue(gap <= inFlight,
                        "device " + d + ": activations differ by " + gap + " bytes, more than " + microbatches + " messages of " + message);
                planned.get(d).remove(Category.ACTIVATIONS);
                measured.get(d).remove(Category.ACTIVATIONS);
            }
            assertEquals(measured, planned);
        }
    }
}
