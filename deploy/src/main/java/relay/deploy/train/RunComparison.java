package relay.deploy.train;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Two run directories of the same settings against each other after {@code steps}: the same run bit for bit, or the
 * same to float32 rounding — what a run that summed its gradients in another order (fewer replicas for a while) ends
 * as.
 */
public final class RunComparison {
    /** Losses of a step to this relative difference, weights to this difference ({@link Checkpoint#weightDifference}). */
    public static final double LOSS_TOLERANCE = 1e-5, WEIGHT_TOLERANCE = 1e-4;

    /** A line of metrics.jsonl: the step's loss, and its validation loss where it has one. */
    private static final Pattern LOSSES = Pattern.compile("\\{\"step\":(\\d+),\"loss\":([-0-9.eE]+)(?:,\"val_loss\":([-0-9.eE]+))?,.*");

    private RunComparison() {}

    /** Null when both have the same weights and optimizer state after {@code steps}, byte for byte, and the same loss at every step; else what differs. */
    public static String identical(Path a, Path b, int steps) throws IOException {
        Path last = checkpoint(steps);
        if (!Files.isDirectory(b.resolve(last))) return b.resolve(last) + " is missing";
        String files = Checkpoint.difference(a.resolve(last), b.resolve(last));
        if (files != null) return files;
        return losses(a).equals(losses(b)) ? null : "the losses differ";
    }

    /** Null when both have every step's losses and the weights after {@code steps} within the tolerances; else what differs. */
    public static String close(Path a, Path b, int steps) throws IOException {
        Path last = checkpoint(steps);
        if (!Files.isDirectory(b.resolve(last))) return b.resolve(last) + " is missing";
        List<String> la = Files.readAllLines(a.resolve("metrics.jsonl")), lb = Files.readAllLines(b.resolve("metrics.jsonl"));
        if (la.size() != lb.size()) return la.size() + " steps against " + lb.size();
        for (int i = 0; i < la.size(); i++) {
            Matcher x = LOSSES.matcher(la.get(i)), y = LOSSES.matcher(lb.get(i));
            if (!x.matches() || !y.matches()) return "line " + (i + 1) + " of metrics.jsonl is not a step's";
            for (int g = 2; g <= 3; g++) {
                if ((x.group(g) == null) != (y.group(g) == null)) return "step " + x.group(1) + " was evaluated in one run only";
                if (x.group(g) == null) continue;
                double u = Double.parseDouble(x.group(g)), v = Double.parseDouble(y.group(g));
                if (!(Math.abs(u - v) <= LOSS_TOLERANCE * Math.abs(u))) {
                    return String.format(Locale.ROOT, "step %s: %s %s against %s", x.group(1), g == 2 ? "loss" : "validation loss", u, v);
                }
            }
        }
        double d = Checkpoint.weightDifference(a.resolve(last), b.resolve(last));
        return d <= WEIGHT_TOLERANCE ? null : "weights differ by " + d;
    }

    private static Path checkpoint(int steps) {
        return Path.of("checkpoints", "step-" + steps);
    }

    private static List<String> losses(Path run) throws IOException {
        return Files.readAllLines(run.resolve("metrics.jsonl")).stream().map(l -> l.replaceAll(",\"lr\".*", "")).toList();
    }
}
