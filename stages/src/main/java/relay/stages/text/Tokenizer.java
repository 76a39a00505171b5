package relay.stages.text;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A BPE tokenizer in one of the two forms Hugging Face's tokenizer.json describes for decoder models:
 * <ul>
 *   <li>byte-level (GPT-2, LLaMA-3 style): text is split by GPT-2's pattern, each piece's UTF-8 bytes are
 *   written as printable characters ({@link ByteLevel}) and merged;</li>
 *   <li>metaspace with byte fallback (LLaMA-2 style): spaces become "▁" (one is prepended to the text),
 *   every ▁ starts a word, words are merged from characters, and a character missing from the vocabulary
 *   becomes its UTF-8 bytes as {@code <0xNN>} tokens.</li>
 * </ul>
 * Special tokens (added tokens) are matched first, as whole strings, and never split.
 */
public final class Tokenizer {
    public enum Kind { BYTE_LEVEL, METASPACE }

    /** GPT-2's pre-tokenization: contractions, letter runs, digit runs, other symbols, and whitespace. */
    static final Pattern GPT2_SPLIT = Pattern.compile(
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+");
    static final String SPACE = "\u2581";

    private final Kind kind;
    private final Map<String, Integer> vocab;
    private final String[] byId;
    private final Map<String, Integer> mergeRank;
    private final Map<String, Integer> special;
    private final Pattern specialPattern;
    /** Words already encoded (at most 100,000); concurrent, so documents can be encoded in parallel. */
    private final Map<String, int[]> cache = new java.util.concurrent.ConcurrentHashMap<>();

    /**
     * @param merges   pairs "left right" in priority order
     * @param special  added tokens matched verbatim (their ids must be in the vocabulary or beyond it)
     */
    public Tokenizer(Kind kind, Map<String, Integer> vocab, List<String> merges, Map<String, Integer> special) {
        this.kind = kind;
        this.vocab = Map.copyOf(vocab);
        this.special = new LinkedHashMap<>(special);
        int size = 0;
        for (int id : vocab.values()) size = Math.max(size, id + 1);
        for (int id : special.values()) size = Math.max(size, id + 1);
        this.byId = new String[size];
        vocab.forEach((t, id) -> byId[id] = t);
        special.forEach((t, id) -> byId[id] = t);
        this.mergeRank = new HashMap<>();
        for (int i = 0; i < merges.size(); i++) mergeRank.putIfAbsent(merges.get(i), i);
        this.specialPattern = special.isEmpty() ? null
                : Pattern.compile(String.join("|", special.keySet().stream().sorted((a, b) -> b.length() - a.length())
                        .map(Pattern::quote).toList()));
    }

    public Kind kind() {
        return kind;
    }

    /** Ids run from 0 to size − 1. */
    public int size() {
        return byId.length;
    }

    public Map<String, Integer> vocab() {
        return vocab;
    }

    public Map<String, Integer> specialTokens() {
        return special;
    }

    /** The merges in priority order. */
    public List<String> merges() {
        String[] m = new String[mergeRank.size()];
        mergeRank.forEach((pair, r) -> m[r] = pair);
        return List.of(m);
    }

    public int[] encode(String text) {
        List<Integer> ids = new ArrayList<>();
        int from = 0;
        if (specialPattern != null) {
            Matcher m = specialPattern.matcher(text);
            while (m.find()) {
                encodeOrdinary(text.substring(from, m.start()), ids, from == 0);
                ids.add(special.get(m.group()));
                from = m.end();
            }
        }
        encodeOrdinary(text.substring(from), ids, from == 0);
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    private void encodeOrdinary(String text, List<Integer> out, boolean atStart) {
        if (text.isEmpty()) return;
        if (kind == Kind.BYTE_LEVEL) {
            Matcher m = GPT2_SPLIT.matcher(text);
            while (m.find()) {
                for (int id : word(ByteLevel.encode(m.group().getBytes(StandardCharsets.UTF_8)))) out.add(id);
            }
            return;
        }
        String normalized = (atStart ? SPACE : "") + text.replace(" ", SPACE);
        // Every ▁ starts a word (Hugging Face's Metaspace pre-tokenizer with split on).
        int start = 0;
        for (int i = 1; i <= normalized.length(); i++) {
            if (i == normalized.length() || normalized.startsWith(SPACE, i)) {
                for (int id : word(normalized.substring(start, i))) out.add(id);
                start = i;
            }
        }
    }

    /** BPE on one word: merge the adjacent pair of lowest rank until none is left. */
    private int[] word(String w) {
        int[] hit = cache.get(w);
        if (hit != null) return hit;
        List<String> parts = new ArrayList<>();
        w.codePoints().forEach(cp -> parts.add(new String(Character.toChars(cp))));
        while (parts.size() > 1) {
            int best = -1, bestRank = Integer.MAX_VALUE;
            for (int i = 0; i + 1 < parts.size(); i++) {
                Integer r = mergeRank.get(parts.get(i) + " " + parts.get(i + 1));
                if (r != null && r < bestRank) {
                    bestRank = r;
                    best = i;
                }
            }
            if (best < 0) break;
            String left = parts.get(best), right = parts.get(best + 1), merged = left + right;
            List<String> next = new ArrayList<>(parts.size());
            for (int i = 0; i < parts.size(); i++) {
                if (i + 1 < parts.size() && parts.get(i).equals(left) && parts.get(i + 1).equals(right)) {
                    next.add(merged);
                    i++;
                } else {
                    next.add(parts.get(i));
                }
            }
            parts.clear();
            parts.addAll(next);
        }
        List<Integer> ids = new ArrayList<>();
        for (String p : parts) {
            Integer id = vocab.get(p);
            if (id != null) {
                ids.add(id);
            } else if (kind == Kind.METASPACE) {
                for (byte b : p.getBytes(StandardCharsets.UTF_8)) ids.add(byteToken(b));
            } else {
                throw new IllegalArgumentException("byte-level token '" + p + "' is not in the vocabulary");
            }
        }
        int[] result = ids.stream().mapToInt(Integer::intValue).toArray();
        if (cache.size() < 100_000) cache.put(w, result);
        return result;
    }

    private int byteToken(byte b) {
        String t = String.format("<0x%02X>", b & 0xFF);
        Integer id = vocab.get(t);
        if (id == null) throw new IllegalArgumentException("byte fallback token " + t + " is not in the vocabulary");
        return id;
    }

    public String decode(int[] ids) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        StringBuilder sb = new StringBuilder();
        for (int id : ids) {
            if (id < 0 || id >= byId.length || byId[id] == null) throw new IllegalArgumentException("token id " + id + " is not in the vocabulary");
            String t = byId[id];
            if (kind == Kind.METASPACE && t.length() == 6 && t.startsWith("<0x") && t.endsWith(">")) {
                bytes.write(Integer.parseInt(t.substring(3, 5), 16));
            } else if (special.containsKey(t)) {
                flush(bytes, sb);
                sb.append(t);
            } else if (kind == Kind.BYTE_LEVEL) {
                byte[] b = ByteLevel.decode(t);
                bytes.writeBytes(b != null ? b : t.getBytes(StandardCharsets.UTF_8));
            } else {
                flush(bytes, sb);
                sb.append(t.replace(SPACE, " "));
            }
        }
        flush(bytes, sb);
        String s = sb.toString();
        return kind == Kind.METASPACE && s.startsWith(" ") ? s.substring(1) : s;
    }

    private static void flush(ByteArrayOutputStream bytes, StringBuilder sb) {
        if (bytes.size() == 0) return;
        sb.append(bytes.toString(StandardCharsets.UTF_8));
        bytes.reset();
    }
}
