package relay.stages.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import relay.stages.layers.TransformerBlock;
import relay.stages.model.LmHead;
import relay.stages.model.Model;
import relay.stages.tensor.Tensor;
import relay.stages.tensor.cpu.CpuDevice;

/**
 * Relay against Hugging Face transformers: two tiny model directories written by Relay were loaded by
 * transformers as they are and run in float64 (fixtures/hf/make_expected.py, whose output is
 * expected.json). Relay loads the same directories and must give the same logits, loss and gradient of the
 * loss with respect to the input embeddings, to float32 accuracy.
 */
class CrossFrameworkTest {
    /** Relative to the largest magnitude, as in the float64 self-test: float32 through two blocks stays near 1e-6. */
    static final double TOLERANCE = 1e-4;

    static Path fixtures() throws URISyntaxException {
        return Path.of(CrossFrameworkTest.class.getResource("/fixtures/hf/expected.json").toURI()).getParent();
    }

    static double[] doubles(JsonArray a) {
        double[] d = new double[a.size()];
        for (int i = 0; i < d.length; i++) d[i] = a.get(i).getAsDouble();
        return d;
    }

    static int[] ints(JsonArray a) {
        int[] d = new int[a.size()];
        for (int i = 0; i < d.length; i++) d[i] = a.get(i).getAsInt();
        return d;
    }

    static void assertClose(double[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what);
        double maxDiff = 0, scale = 0;
        for (int i = 0; i < want.length; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(want[i] - got[i]));
            scale = Math.max(scale, Math.abs(want[i]));
        }
        assertTrue(maxDiff <= TOLERANCE * scale, what + ": max difference " + maxDiff + " against scale " + scale);
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama", "gpt2"})
    void matchesTransformers(String name) throws Exception {
        Path dir = fixtures();
        JsonObject expected = JsonParser.parseString(Files.readString(dir.resolve("expected.json"))).getAsJsonObject()
                .getAsJsonObject(name);
        int batch = expected.get("batch").getAsInt(), seq = expected.get("seq").getAsInt();
        int[] tokens = ints(expected.getAsJsonArray("tokens")), targets = ints(expected.getAsJsonArray("targets"));
        try (CpuDevice device = new CpuDevice("cpu-hf", 1); Model model = HfModelDirectory.load(dir.resolve(name), device)) {
            Tensor x0 = model.embedding().forward(tokens, seq);
            List<Tensor> inputs = new ArrayList<>();
            List<TransformerBlock.Forward> forwards = new ArrayList<>();
            Tensor x = x0;
            for (TransformerBlock b : model.blocks()) {
                inputs.add(x);
                TransformerBlock.Forward f = b.forward(x, batch, seq);
                forwards.add(f);
                x = f.output();
            }
            try (Tensor logits = model.head().logits(x)) {
                assertClose(doubles(expected.getAsJsonArray("logits")), logits.toArray(), name + " logits");
            }
            LmHead.Result r = model.head().lossAndBackward(x, targets, 1f, null);
            assertEquals(expected.get("loss").getAsDouble(), r.loss(), TOLERANCE * expected.get("loss").getAsDouble(), name + " loss");
            x.close();
            Tensor grad = r.dx();
            for (int i = model.blocks().size() - 1; i >= 0; i--) {
                Tensor next = model.blocks().get(i).backward(forwards.get(i), grad, null);
                grad.close();
                if (i > 0) inputs.get(i).close();
                grad = next;
            }
            assertClose(doubles(expected.getAsJsonArray("embeds_grad")), grad.toArray(), name + " input-embedding gradient");
            grad.close();
            x0.close();
        }
    }
}
