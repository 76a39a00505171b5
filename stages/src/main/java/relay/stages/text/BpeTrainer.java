package relay.stages.text;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.IntConsumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Trains a byte-level BPE tokenizer: the 256 byte symbols, then, until the vocabulary is full, the most
 * frequent adjacent pair over the corpus's pre-tokenized words is merged (ties go to the smaller pair,
 * so training is deterministic). Special tokens take the last ids.
 */
public final class BpeTrainer {
    private BpeTrainer() {}

    /**
     * GPT-2's pre-tokenization, which the written tokenizer.json's ByteLevel pre-tokenizer applies when encoding:
     * contractions, letter runs, digit runs, other symbols, and whitespace. Unicode whitespace, as the library's
     * regex engine has it, so training counts the very words encoding will see.
     */
    private static final Pattern GPT2_SPLIT = Pattern.compile(
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", Pattern.UNICODE_CHARACTER_CLASS);

    private static final class Word {
        final List<String> symbols;
        final long count;

        Word(List<String> symbols, long count) {
            this.symbols = symbols;
            this.count = count;
        }
    }

    /** @param progress told the number of merges learned so far, now and then */
    public static ByteLevelBpe train(Iterable<String> texts, int vocabSize, List<String> specialTokens, IntConsumer progress) {
        if (vocabSize < 256 + specialTokens.size()) {
            throw new IllegalArgumentException("a byte-level vocabulary needs at least " + (256 + specialTokens.size()) + " entries");
        }
        Map<String, Long> counts = new HashMap<>();
        for (String text : texts) {
            Matcher m = GPT2_SPLIT.matcher(text);
            while (m.find()) counts.merge(ByteLevel.encode(m.group().getBytes(StandardCharsets.UTF_8)), 1L, Long::sum);
        }
        List<Word> words = new ArrayList<>();
        counts.forEach((w, c) -> {
            List<String> symbols = new ArrayList<>();
            w.codePoints().forEach(cp -> symbols.add(new String(Character.toChars(cp))));
            words.add(new Word(symbols, c));
        });
        Map<String, Integer> vocab = new LinkedHashMap<>();
        for (int b = 0; b < 256; b++) vocab.put(String.valueOf(ByteLevel.BYTE_TO_CHAR[b]), b);
        List<String> merges = new ArrayList<>();
        int target = vocabSize - specialTokens.size();
        while (vocab.size() < target) {
            Map<String, Long> pairs = new HashMap<>();
            for (Word w : words) {
                for (int i = 0; i + 1 < w.symbols.size(); i++) pairs.merge(w.symbols.get(i) + " " + w.symbols.get(i + 1), w.count, Long::sum);
            }
            String best = null;
            long bestCount = 0;
            for (Map.Entry<String, Long> e : pairs.entrySet()) {
                long c = e.getValue();
                if (c > bestCount || (c == bestCount && best != null && e.getKey().compareTo(best) < 0)) {
                    best = e.getKey();
                    bestCount = c;
                }
            }
            if (best == null) break;
            String[] lr = best.split(" ", 2);
            String merged = lr[0] + lr[1];
            merges.add(best);
            vocab.put(merged, vocab.size());
            for (Word w : words) {
                List<String> s = w.symbols;
                for (int i = 0; i + 1 < s.size(); i++) {
                    if (s.get(i).equals(lr[0]) && s.get(i + 1).equals(lr[1])) {
                        s.set(i, merged);
                        s.remove(i + 1);
                    }
                }
            }
            if (merges.size() % 100 == 0) progress.accept(merges.size());
        }
        Map<String, Integer> special = new LinkedHashMap<>();
        for (String s : specialTokens) special.put(s, vocab.size() + special.size());
        return new ByteLevelBpe(vocab, merges, special);
    }
}
