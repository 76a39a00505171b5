package relay.stages.text;

import java.util.List;
import java.util.Map;

/**
 * A byte-level BPE vocabulary as {@link BpeTrainer} learns it: the 256 byte symbols and the merged tokens
 * (token → id), the merges in priority order ("left right"), and the special tokens, which take the ids after them.
 */
public record ByteLevelBpe(Map<String, Integer> vocab, List<String> merges, Map<String, Integer> special) {
    public ByteLevelBpe {
        vocab = Map.copyOf(vocab);
        merges = List.copyOf(merges);
        special = Map.copyOf(special);
    }

    /** Ids run from 0 to size − 1. */
    public int size() {
        return vocab.size() + special.size();
    }
}
