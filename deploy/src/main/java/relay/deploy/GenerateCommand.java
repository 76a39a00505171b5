package relay.deploy;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import relay.stages.io.HfModelDirectory;
import relay.stages.model.KvCache;
import relay.stages.model.Model;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.text.ChatTemplate;
import relay.stages.text.Tokenizer;

@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Continues a prompt with a model directory (with its tokenizer.json), one token at a time with a key/value "
                + "cache: greedy, or sampled with temperature, top-k and top-p.")
final class GenerateCommand implements Callable<Integer> {
    @Mixin
    ModelDirectoryOption modelDirectory;

    @Option(names = "--prompt", required = true, description = "the text to continue")
    String prompt;

    @Option(names = "--max-tokens", description = "tokens to generate (default ${DEFAULT-VALUE})")
    int maxTokens = 60;

    @Option(names = "--temperature", description = "softmax temperature; 0 means greedy (default ${DEFAULT-VALUE})")
    double temperature = 0.8;

    @Option(names = "--top-k", description = "sample among the k most likely tokens; 0 for all (default ${DEFAULT-VALUE})")
    int topK = 40;

    @Option(names = "--top-p", description = "sample among the most likely tokens whose probability adds up to p (default ${DEFAULT-VALUE})")
    double topP = 0.95;

    @Option(names = "--seed", description = "sampling seed (default ${DEFAULT-VALUE})")
    long seed = 1;

    @Option(names = "--chat", description = "the prompt is a user's message: rendered with the model's chat template, the answer printed")
    boolean chat;

    @Override
    public Integer call() {
        Inputs.require(maxTokens >= 1, "--max-tokens", "≥ 1", maxTokens);
        Inputs.require(temperature >= 0 && Double.isFinite(temperature), "--temperature", "a finite number ≥ 0 (0: greedy)", temperature);
        Inputs.require(topK >= 0, "--top-k", "≥ 0 (0: all tokens)", topK);
        Inputs.require(topP > 0 && topP <= 1, "--top-p", "in (0, 1]", topP);
        Inputs.require(!prompt.isEmpty(), "--prompt", "some text", "empty");
        Path model = modelDirectory.path();
        Tokenizer tokenizer = Tokenizer.ofModel(model);
        SplittableRandom rng = new SplittableRandom(seed);
        try (CpuDevice d = CpuDevice.allCores(); Model m = HfModelDirectory.load(model, d);
             KvCache cache = new KvCache(m, m.config().maxPositions())) {
            int[] ids = chat ? tokenizer.encode(ChatTemplate.of(tokenizer).render(List.of(new ChatTemplate.Message("user", prompt)), true))
                    : promptIds(tokenizer, prompt);
            if (ids.length == 0) throw new IllegalArgumentException("the prompt encodes to no tokens");
            if (ids.length >= cache.capacity()) {
                throw new IllegalArgumentException("the prompt has " + ids.length + " tokens; the model sees at most " + cache.capacity());
            }
            if (!chat) System.out.print(prompt);
            // What follows the prompt is printed as it grows: the whole decoded (without special tokens, so spaces between
            // words come out as the decoder makes them) less the prompt's own decoding.
            String base = tokenizer.decode(ids, true), shown = "";
            // The prompt goes through once; after it every token costs one token's forward, reading the cache.
            float[] logits = m.nextLogits(ids, cache);
            int t = 0;
            for (; t < maxTokens && cache.length() < cache.capacity(); t++) {
                // A model may have more rows than its tokenizer has tokens: only real tokens are candidates.
                int next = pick(Arrays.copyOf(logits, Math.min(logits.length, tokenizer.size())), rng);
                if (tokenizer.special().endsSequence(next)) break;
                ids = Arrays.copyOf(ids, ids.length + 1);
                ids[ids.length - 1] = next;
                String all = tokenizer.decode(ids, true);
                String text = all.startsWith(base) ? all.substring(base.length()) : all;
                // A character whose bytes have not all come yet decodes as U+FFFD: it waits to be printed whole.
                if (!text.endsWith("\uFFFD")) {
                    System.out.print(text.substring(Math.min(shown.length(), text.length())));
                    System.out.flush();
                    shown = text;
                }
                if (cache.length() < cache.capacity()) logits = m.nextLogits(new int[] {next}, cache);
            }
            System.out.println();
            if (t < maxTokens && cache.length() >= cache.capacity()) {
                System.err.printf("relay: stopped after %d of %d tokens: the model sees at most %d positions%n", t, maxTokens,
                        cache.capacity());
            }
        }
        return 0;
    }

    /**
     * The prompt as the model saw each text begin in training (Hugging Face's {@code tokenizer(prompt)}, with its BOS),
     * less an end-of-sequence token the model's template would close it with: the model is to continue it.
     */
    static int[] promptIds(Tokenizer tokenizer, String prompt) {
        int[] ids = tokenizer.encodeDocument(prompt);
        boolean closed = ids.length > tokenizer.encode(prompt).length && tokenizer.special().endsSequence(ids[ids.length - 1]);
        return closed ? Arrays.copyOf(ids, ids.length - 1) : ids;
    }

    int pick(float[] logits, SplittableRandom rng) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
        if (temperature <= 0) return best;
        Integer[] order = new Integer[logits.length];
        for (int i = 0; i < order.length; i++) order[i] = i;
        Arrays.sort(order, (a, b) -> Float.compare(logits[b], logits[a]));
        int k = topK > 0 ? Math.min(topK, order.length) : order.length;
        double[] p = new double[k];
        double sum = 0;
        for (int i = 0; i < k; i++) sum += p[i] = Math.exp((logits[order[i]] - logits[best]) / temperature);
        double kept = 0;
        int n = 0;
        while (n < k && kept < topP * sum) kept += p[n++];
        double r = rng.nextDouble() * kept;
        for (int i = 0; i < n; i++) {
            r -= p[i];
            if (r <= 0) return order[i];
        }
        return order[n - 1];
    }
}
