package relay.deploy.train;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigParseOptions;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Collectors;

/**
 * Every setting a user gives under {@code relay.} must be one the defaults (the reference.conf files) have: a misspelt
 * key, with its full path as much as without, would otherwise be ignored without a word. The refusal suggests the
 * known setting nearest the one given.
 */
public final class KnownSettings {
    private KnownSettings() {}

    /** Refuses, naming {@code where} (a file or an argument), the first setting under relay. that the defaults do not have. */
    public static void check(Config given, String where) {
        if (!given.hasPath("relay")) return;
        Config known = ConfigFactory.defaultReference();
        List<String> unknown = given.getConfig("relay").entrySet().stream().map(e -> "relay." + e.getKey())
                .filter(k -> !known.hasPathOrNull(k)).sorted().toList();
        if (unknown.isEmpty()) return;
        String key = unknown.get(0);
        List<String> all = known.getConfig("relay").entrySet().stream().map(e -> "relay." + e.getKey()).toList();
        String nearest = all.stream().min(Comparator.comparingInt(k -> distance(k, key))).orElseThrow();
        String group = nearest.substring(0, nearest.indexOf('.', "relay.".length()) + 1);
        String hint = distance(nearest, key) <= Math.max(2, key.length() / 6) ? " (did you mean " + nearest + "?)"
                : "; known: " + all.stream().filter(k -> k.startsWith(group)).sorted().collect(Collectors.joining(", "));
        throw new IllegalArgumentException(where + ": unknown setting " + key + hint);
    }

    /**
     * One {@code key=value} argument of a command line as settings, refused here if its key is unknown; a value of the
     * wrong type, found only when the setting is read, is then reported as this argument's, not as an anonymous string's.
     */
    public static Config argument(String path, String value, String argument) {
        Config one = ConfigFactory.parseString(path + " = " + value,
                ConfigParseOptions.defaults().setOriginDescription("argument '" + argument + "'"));
        check(one, "'" + argument + "'");
        return one;
    }

    /** Levenshtein distance: the fewest single-character edits that turn a into b. */
    static int distance(String a, String b) {
        int[] prev = new int[b.length() + 1], cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) prev[j] = j;
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                cur[j] = Math.min(Math.min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1));
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
    }
}
