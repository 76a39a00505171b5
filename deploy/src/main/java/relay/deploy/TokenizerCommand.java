package relay.deploy;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import relay.stages.data.Corpus;
import relay.stages.text.BpeTrainer;
import relay.stages.text.ByteLevelBpe;
import relay.stages.text.TokenizerJson;

@Command(name = "tokenizer", mixinStandardHelpOptions = true, description = "Tokenizer tools.",
        subcommands = {TokenizerCommand.Train.class})
final class TokenizerCommand implements Runnable {
    @Override
    public void run() {
        new picocli.CommandLine(this).usage(System.out);
    }

    @Command(name = "train", mixinStandardHelpOptions = true,
            description = "Trains a byte-level BPE tokenizer on a corpus and writes DIR/tokenizer.json and DIR/tokenizer_config.json "
                    + "(Hugging Face format; <|endoftext|> ends each document).")
    static final class Train implements Callable<Integer> {
        @Option(names = "--corpus", required = true, description = "a text or JSONL corpus (optionally .gz)")
        Path corpus;

        @Option(names = "--vocab", required = true, description = "entries, the 256 bytes and <|endoftext|> included")
        int vocab;

        @Option(names = "--out", required = true, description = "the directory to write tokenizer.json and tokenizer_config.json into")
        Path out;

        @Override
        public Integer call() throws Exception {
            Inputs.require(vocab >= 257, "--vocab", "≥ 257 (the 256 bytes and <|endoftext|>)", vocab);
            Inputs.writableDirectory(out, "--out");
            List<String> docs = Corpus.read(corpus);
            System.out.printf("training %d entries on %d documents...%n", vocab, docs.size());
            ByteLevelBpe t = BpeTrainer.train(docs, vocab, List.of(TokenizerJson.END_OF_TEXT), n -> {
                if (n % 500 == 0) System.out.printf("  %d merges%n", n);
            });
            TokenizerJson.write(t, out);
            System.out.printf("wrote %s and tokenizer_config.json: %d entries, %d merges%n", out.resolve("tokenizer.json"), t.size(),
                    t.merges().size());
            return 0;
        }
    }
}
