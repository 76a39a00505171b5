package relay.stages.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import relay.stages.layers.Parameter;
import relay.stages.model.Family;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.cpu.CpuDevice;

class ReferenceTrainerTest {
    private static CpuDevice device;

    @BeforeAll
    static void open() {
        device = new CpuDevice("cpu-train", 2);
    }

    @AfterAll
    static void close() {
        device.close();
    }

    static ModelConfig tinyLlama() {
        return new ModelConfig(Family.LLAMA, 64, 32, 2, 4, 2, 8, 64, 32, 1e-5f, 10000.0, false);
    }

    static ModelConfig tinyGpt2() {
        return new ModelConfig(Family.GPT2, 64, 32, 2, 4, 4, 8, 128, 32, 1e-5f, 0, true);
    }

    /** From a loss near ln(vocab), a tiny model learns one fixed batch by heart. */
    private static void memorizes(ModelConfig cfg) {
        Batch batch = new SyntheticData(cfg.vocabSize(), 2, 16, 0.0, 3).next();
        try (Model model = Model.initialize(cfg, device, 11)) {
            ReferenceTrainer trainer = ReferenceTrainer.sgd(model, 0.5f);
            double first = trainer.step(List.of(batch)), last = first;
            assertEquals(Math.log(cfg.vocabSize()), first, 0.1, "an untrained model is near uniform");
            for (int i = 0; i < 150; i++) last = trainer.step(List.of(batch));
            assertTrue(last < 0.1, cfg.family() + ": loss " + first + " -> " + last);
        }
    }

    @Test
    void llamaMemorizesAShortSequence() {
        memorizes(tinyLlama());
    }

    @Test
    void gpt2WithTiedEmbeddingsMemorizesAShortSequence() {
        memorizes(tinyGpt2());
    }

    /**
     * Two microbatches of one sequence accumulate to the step of one microbatch of two — with every target counted, and
     * with the first sequence's targets all but two masked (a prompt), where each microbatch weighs the targets it
     * counts: the step's loss is the mean over all of them, as one batch's is.
     */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(ints = {12, 2})
    void accumulationOverMicrobatchesEqualsOneLargeBatch(int countedInFirst) {
        ModelConfig cfg = tinyGpt2();
        Batch unmasked = new SyntheticData(cfg.vocabSize(), 2, 12, 0.3, 5).next();
        int[] targets = unmasked.targets().clone();
        for (int t = 0; t < 12 - countedInFirst; t++) targets[t] = Batch.IGNORED;
        Batch both = new Batch(unmasked.inputs(), targets, 2, 12);
        int half = both.tokens() / 2;
        Batch first = new Batch(java.util.Arrays.copyOfRange(both.inputs(), 0, half),
                java.util.Arrays.copyOfRange(both.targets(), 0, half), 1, 12);
        Batch second = new Batch(java.util.Arrays.copyOfRange(both.inputs(), half, 2 * half),
                java.util.Arrays.copyOfRange(both.targets(), half, 2 * half), 1, 12);
        try (Model a = Model.initialize(cfg, device, 4); Model b = Model.initialize(cfg, device, 4)) {
            for (int step = 0; step < 3; step++) {
                double la = ReferenceTrainer.sgd(a, 0.3f).step(List.of(both));
                double lb = ReferenceTrainer.sgd(b, 0.3f).step(List.of(first, second));
                assertEquals(la, lb, 1e-5 * la);
            }
            List<Parameter> pa = a.parameters(), pb = b.parameters();
            for (int i = 0; i < pa.size(); i++) {
                assertArrayEquals(pa.get(i).value().toArray(), pb.get(i).value().toArray(), 2e-5f, pa.get(i).name());
            }
        }
    }

    @Test
    void sameSeedSameData() {
        assertArrayEquals(new SyntheticData(50, 2, 8, 0.2, 9).next().inputs(), new SyntheticData(50, 2, 8, 0.2, 9).next().inputs());
    }
}
