package relay.deploy;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import relay.stages.data.Corpus;
import relay.stages.text.BpeTrainer;
import relay.stages.text.Tokenizer;
import relay.stages.text.TokenizerJson;

@Command(name = "tokenizer", mixinStandardHelpOptions = true, description = "Tokenizer tools.",
        subcommands = {TokenizerCommand.Train.class})
final class TokenizerCommand implements Runnable {
    @Override
    public void run() {
        new picocli.CommandLine(this).usage(System.out);
    }

    @Command(name = "train", mixinStandardHelpOptions = true,
            description = "Trains a byte-level BPE tokenizer on a corpus and writes DIR/tokenizer.json (Hugging Face format).")
    static final class Train implements Callable<Integer> {
        @Option(names = "--corpus", required = true, description = "a text or JSONL corpus (optionally .gz)")
        Path corpus;

        @Option(names = "--vocab", required = true, description = "entries, the 256 bytes and <|endoftext|> included")
        int vocab;

        @Option(names = "--out", required = true, description = "the directory to write tokenizer.json into")
        Path out;

        @Override
        public Integer call() throws Exception {
            Inputs.require(vocab >= 257, "--vocab", "≥ 257 (the 256 bytes and <|endoftext|>)", vocab);
            Inputs.writableDirectory(out, "--out");
            List<String> docs = Corpus.read(corpus);
            System.out.printf("training %d entries on %d documents...%n", vocab, docs.size());
            Tokenizer t = BpeTrainer.train(docs, vocab, List.of("<|endoftext|>"), n -> {
                if (n % 500 == 0) System.out.printf("  %d merges%n", n);
            });
            Path file = out.resolve("tokenizer.json");
            TokenizerJson.write(t, file);
            System.out.printf("wrote %s: %d entries, %d merges%n", file, t.size(), t.merges().size());
            return 0;
        }
    }
}
