package relay.stages.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import relay.stages.memory.Category;
import relay.stages.model.Family;
import relay.stages.model.Initializer;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.Tensor;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.train.GradientAccumulator;

/**
 * A split backward (B now, W later: zero-bubble schedules) against the block's one-piece backward on an
 * identical block: the same input gradients and the same weight gradients, bit for bit, for both families,
 * with and without recomputation, with LoRA and RSO terms, summed over two microbatches whose W's run after
 * both B's, and applied at once by an in-place sink. Every tensor is freed once W has run.
 */
class SplitBackwardTest {
    static final int B = 2, T = 6;
    static final ModelConfig GPT2 = new ModelConfig(Family.GPT2, 40, 16, 1, 2, 2, 8, 64, 16, 1e-5f, 0, true);
    static final ModelConfig LLAMA = new ModelConfig(Family.LLAMA, 40, 16, 1, 4, 2, 4, 40, 16, 1e-5f, 10000.0, false);

    enum Terms { NONE, LORA, RSO }

    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        for (ModelConfig cfg : List.of(GPT2, LLAMA))
            for (boolean recompute : new boolean[] {false, true})
                for (Terms terms : Terms.values()) out.add(Arguments.of(cfg.family(), cfg, recompute, terms));
        return out.stream();
    }

    private static TransformerBlock block(CpuDevice device, ModelConfig cfg, boolean recompute, Terms terms) {
        Initializer init = new Initializer(device, 7);
        TransformerBlock b = Model.block(cfg, 0, init);
        b.setRecompute(recompute);
        if (terms != Terms.NONE) {
            int i = 0;
            for (Linear l : b.linears()) {
                Parameter a = init.normal("a" + i, 0.3f, 3, l.in()), bb = init.normal("b" + i, 0.3f, l.out(), 3);
                l.setLowRank(new LowRank(a, terms == Terms.LORA, bb, 0.5f));
                i++;
            }
        }
        return b;
    }

    private static Tensor input(CpuDevice d, long seed, int cols) {
        Tensor t = d.allocate(Category.ACTIVATIONS, B * T, cols);
        java.util.Random r = new java.util.Random(seed);
        float[] v = new float[B * T * cols];
        for (int i = 0; i < v.length; i++) v[i] = (float) r.nextGaussian();
        t.copyFrom(v);
        return t;
    }

    @ParameterizedTest(name = "{0} recompute={2} {3}")
    @MethodSource("cases")
    void summedOverMicrobatchesEqualsOnePieceBackward(Family family, ModelConfig cfg, boolean recompute, Terms terms) {
        try (CpuDevice device = new CpuDevice("cpu-split", 1)) {
            TransformerBlock whole = block(device, cfg, recompute, terms), split = block(device, cfg, recompute, terms);
            try (GradientAccumulator wholeSums = new GradientAccumulator(); GradientAccumulator splitSums = new GradientAccumulator()) {
                List<DeferredWeightGradients> ws = new ArrayList<>();
                List<Tensor> inputs = new ArrayList<>();
                for (int j = 0; j < 2; j++) {
                    Tensor x = input(device, j, cfg.hidden()), dOut = input(device, 10 + j, cfg.hidden());
                    ws.add(backwardBoth(whole, split, x, dOut, wholeSums));
                    dOut.close();
                    inputs.add(x); // W reads the block's input (the first norm's weight gradient): it lives until W has run
                }
                for (DeferredWeightGradients w : ws) w.run(splitSums);
                inputs.forEach(Tensor::close);
                List<Parameter> ps = all(whole), qs = all(split);
                assertEquals(wholeSums.parameters().size(), splitSums.parameters().size());
                assertTrue(wholeSums.parameters().size() > 2);
                for (Parameter p : wholeSums.parameters()) {
                    assertArrayEquals(wholeSums.gradient(p).toArray(), splitSums.gradient(qs.get(ps.indexOf(p))).toArray(), p.name());
                }
            }
            assertEquals(0, device.memory().current(Category.ACTIVATIONS), "activations, gradient copies and all freed");
            close(whole, split);
        }
    }

    @ParameterizedTest(name = "{0} recompute={2} {3}")
    @MethodSource("cases")
    void appliedInPlaceEqualsOnePieceBackward(Family family, ModelConfig cfg, boolean recompute, Terms terms) {
        try (CpuDevice device = new CpuDevice("cpu-split", 1)) {
            TransformerBlock whole = block(device, cfg, recompute, terms), split = block(device, cfg, recompute, terms);
            GradientSink lomo = (p, g) -> device.axpy(-0.1f, g, p.value());
            Tensor x = input(device, 3, cfg.hidden()), dOut = input(device, 4, cfg.hidden());
            backwardBoth(whole, split, x, dOut, lomo).run(lomo);
            List<Parameter> ps = all(whole), qs = all(split);
            for (int i = 0; i < ps.size(); i++) assertArrayEquals(ps.get(i).value().toArray(), qs.get(i).value().toArray(), ps.get(i).name());
            x.close();
            dOut.close();
            close(whole, split);
        }
    }

    @ParameterizedTest(name = "{0} recompute={2} {3}")
    @MethodSource("cases")
    void frozenBlockDefersNothingAndKeepsNothing(Family family, ModelConfig cfg, boolean recompute, Terms terms) {
        try (CpuDevice device = new CpuDevice("cpu-split", 1)) {
            TransformerBlock whole = block(device, cfg, recompute, terms), split = block(device, cfg, recompute, terms);
            whole.setTrainable(false);
            split.setTrainable(false);
            Tensor x = input(device, 5, cfg.hidden()), dOut = input(device, 6, cfg.hidden());
            DeferredWeightGradients w = backwardBoth(whole, split, x, dOut, null);
            assertTrue(w.isEmpty(), "a frozen block has no W");
            x.close();
            dOut.close();
            assertEquals(0, device.memory().current(Category.ACTIVATIONS), "an empty W keeps no activations");
            w.close();
            close(whole, split);
        }
    }

    /**
     * x through both blocks, then the one-piece backward (into {@code wholeSink}) and the split block's B: the
     * input gradients must be equal. Returns the split block's W.
     */
    private static DeferredWeightGradients backwardBoth(TransformerBlock whole, TransformerBlock split, Tensor x, Tensor dOut,
                                                        GradientSink wholeSink) {
        TransformerBlock.Forward fw = whole.forward(x, B, T), fs = split.forward(x, B, T);
        fw.output().close();
        fs.output().close();
        try (Tensor dxWhole = whole.backward(fw, dOut, wholeSink)) {
            TransformerBlock.Split s = split.backwardInput(fs, dOut);
            try (Tensor dx = s.dx()) {
                assertArrayEquals(dxWhole.toArray(), dx.toArray(), "input gradient");
            }
            return s.weights();
        }
    }

    private static List<Parameter> all(TransformerBlock b) {
        List<Parameter> ps = new ArrayList<>(b.parameters());
        for (Linear l : b.linears()) {
            if (l.lowRank() != null) {
                ps.add(l.lowRank().a());
                ps.add(l.lowRank().b());
            }
        }
        return ps;
    }

    private static void close(TransformerBlock... blocks) {
        for (TransformerBlock b : blocks) {
            for (Linear l : b.linears()) if (l.lowRank() != null) l.lowRank().close();
            b.close();
        }
    }
}
