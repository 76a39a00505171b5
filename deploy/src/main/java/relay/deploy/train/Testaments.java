package relay.deploy.train;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import relay.stages.data.PackedDataset;
import relay.stages.model.ModelConfig;
import relay.stages.text.BpeTrainer;
import relay.stages.text.Tokenizer;
import relay.stages.text.TokenizerJson;
import relay.stages.train.Batch;

/**
 * The shipped King James Bible split for fine-tuning: the Old Testament to pre-train on (and the tokenizer,
 * trained on it alone, as a pre-trained model brings its own), the New Testament to fine-tune on, with every
 * tenth verse held out — verses 5, 15, … to choose learning rates by, verses 0, 10, … to report.
 */
public record Testaments(PackedDataset oldTestament, PackedDataset newTestament, List<Batch> tuning,
                         List<Batch> test) {

    /** Matthew 1:1, the New Testament's first verse. */
    static final String FIRST_NEW_TESTAMENT_VERSE = "The book of the generation of Jesus Christ, the son of David, the son of Abraham.";

    /** At most this many held-out sequences in each evaluation set: enough for a steady mean, cheap to run often. */
    static final int EVALUATION_SEQUENCES = 64;

    /** The verses of each part: the Old Testament, and the New Testament's fine-tuning, tuning and test verses. */
    record Split(List<String> old, List<String> train, List<String> tuning, List<String> test) {}

    /** Splits the corpus's verses at Matthew 1:1; of the New Testament, verse i is a test verse when i % 10 = 0, a tuning verse when 5. */
    static Split split(List<String> verses) {
        int nt = verses.indexOf(FIRST_NEW_TESTAMENT_VERSE);
        if (nt < 0) throw new IllegalStateException("the built-in corpus has no New Testament (Matthew 1:1 not found)");
        List<String> train = new ArrayList<>(), tuning = new ArrayList<>(), test = new ArrayList<>();
        for (int i = nt; i < verses.size(); i++) {
            int k = (i - nt) % 10;
            (k == 0 ? test : k == 5 ? tuning : train).add(verses.get(i));
        }
        return new Split(verses.subList(0, nt), train, tuning, test);
    }

    public static Testaments load(ModelConfig cfg, int seq, int batch, long seed, PrintStream out) {
        if (cfg.vocabSize() < 257) throw new IllegalArgumentException("the comparison trains a byte-level BPE: the model needs ≥ 257 vocabulary entries");
        Split s = split(RunInputs.corpus("builtin:kjv"));
        out.printf("Old Testament %d verses (pre-training), New Testament %d (fine-tuning %d, held out %d + %d)%n", s.old().size(),
                s.train().size() + s.tuning().size() + s.test().size(), s.train().size(), s.tuning().size(), s.test().size());
        out.printf("training a byte-level BPE tokenizer of %d entries on the Old Testament...%n", cfg.vocabSize());
        Tokenizer tok = TokenizerJson.load(BpeTrainer.train(s.old(), cfg.vocabSize(), List.of(TokenizerJson.END_OF_TEXT), merges -> {}));
        PackedDataset oldData = PackedDataset.of(s.old(), tok, seq, 0.01, seed, p -> {});
        PackedDataset newData = PackedDataset.of(s.train(), tok, seq, 0.01, seed, p -> {});
        return new Testaments(oldData, newData, heldOut(s.tuning(), tok, seq, batch, seed), heldOut(s.test(), tok, seq, batch, seed));
    }

    /** Every sequence of the verses, packed, as evaluation batches (at most {@link #EVALUATION_SEQUENCES}). */
    private static List<Batch> heldOut(List<String> verses, Tokenizer tok, int seq, int batch, long seed) {
        List<Batch> b = PackedDataset.of(verses, tok, seq, 1.0, seed, p -> {}).validation(batch, EVALUATION_SEQUENCES);
        if (b.isEmpty()) throw new IllegalArgumentException("the held-out verses give fewer than " + batch + " sequences of " + seq + " tokens");
        return b;
    }
}
