package relay.deploy.train;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import relay.actors.PipelineSchedule;

/**
 * The pipeline's timeline drawn from a run's trace.json: the last traced training step, one lane per device
 * (named with its node in a cluster), a box per forward, backward and update — coloured by stage, forwards
 * light and backwards dark, labelled by microbatch — with the bubble measured from the boxes beside what the
 * schedule's theory gives for as many devices and microbatches.
 */
final class Gantt {
    /** A span of the trace: what ran, on which stage (actor) and device, when, for which step and microbatch. */
    record Span(String name, String actor, int device, double startMs, double durationMs, long step, int microbatch) {
        double endMs() {
            return startMs + durationMs;
        }
    }

    /** A traced step: its spans, the devices' names, and its bubble measured and in theory. */
    record Step(long step, List<Span> spans, Map<Integer, String> devices, double bubble, double theory) {}

    private static final int WIDTH = 980, LEFT = 190, RIGHT = 14, LANE = 30, TOP = 8;

    private Gantt() {}

    /** The last training step in a trace that has backwards, or null when the trace holds none. */
    static Step lastStep(Path trace) throws IOException {
        List<Span> spans = new ArrayList<>();
        Map<Integer, String> devices = new TreeMap<>();
        JsonObject root;
        try (Reader r = Files.newBufferedReader(trace, StandardCharsets.UTF_8)) {
            root = JsonParser.parseReader(r).getAsJsonObject();
        } catch (RuntimeException e) {
            throw new IOException(trace + ": not a trace (" + e.getMessage() + ")", e);
        }
        for (JsonElement el : root.getAsJsonArray("traceEvents")) {
            JsonObject e = el.getAsJsonObject();
            String ph = e.get("ph").getAsString(), name = e.get("name").getAsString();
            if (ph.equals("M") && name.equals("process_name")) {
                devices.put(e.get("pid").getAsInt(), e.getAsJsonObject("args").get("name").getAsString());
            } else if (ph.equals("X") && (name.equals("forward") || name.equals("backward") || name.equals("weights") || name.equals("update"))) {
                JsonObject args = e.getAsJsonObject("args");
                spans.add(new Span(name, e.get("cat").getAsString(), e.get("pid").getAsInt(), e.get("ts").getAsDouble() / 1000,
                        e.get("dur").getAsDouble() / 1000, args.get("step").getAsLong(), args.get("microbatch").getAsInt()));
            }
        }
        long last = spans.stream().filter(s -> s.name().equals("backward")).mapToLong(Span::step).max().orElse(-1);
        if (last < 0) return null;
        List<Span> step = spans.stream().filter(s -> s.step() == last).toList();
        double start = step.stream().mapToDouble(Span::startMs).min().orElse(0), end = step.stream().mapToDouble(Span::endMs).max().orElse(0);
        TreeSet<Integer> used = new TreeSet<>(), microbatches = new TreeSet<>();
        double busy = 0;
        for (Span s : step) {
            used.add(s.device());
            microbatches.add(s.microbatch());
            busy += s.durationMs();
        }
        double bubble = end > start ? 1 - busy / (used.size() * (end - start)) : 0;
        return new Step(last, step, devices, bubble, PipelineSchedule.theoreticalBubble(used.size(), microbatches.size()));
    }

    /** The step as an SVG Gantt chart. */
    static String draw(Step st) {
        double t0 = st.spans().stream().mapToDouble(Span::startMs).min().orElse(0);
        double t1 = st.spans().stream().mapToDouble(Span::endMs).max().orElse(t0 + 1);
        TreeSet<Integer> lanes = new TreeSet<>();
        List<String> stages = new ArrayList<>();
        for (Span s : st.spans()) {
            lanes.add(s.device());
            if (!stages.contains(s.actor())) stages.add(s.actor());
        }
        List<Integer> order = new ArrayList<>(lanes);
        double[] ticks = Chart.ticks(0, t1 - t0, 8, false);
        String[] labels = Chart.labels(ticks);
        double span = ticks[ticks.length - 1];
        int plot = WIDTH - LEFT - RIGHT, height = TOP + LANE * order.size() + 40;
        java.util.function.DoubleUnaryOperator px = t -> LEFT + (t - t0) / span * plot;
        StringBuilder s = new StringBuilder(String.format(Locale.ROOT,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-size=\"11\" font-family=\"sans-serif\">", WIDTH, height));
        for (int k = 0; k < ticks.length; k++) {
            double x = LEFT + ticks[k] / span * plot;
            s.append(String.format(Locale.ROOT, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e6e6e6\"/>", x, TOP, x,
                    TOP + LANE * order.size()));
            s.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>", x, TOP + LANE * order.size() + 14,
                    labels[k]));
        }
        s.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">ms since the step's first span</text>",
                LEFT + plot / 2, TOP + LANE * order.size() + 30));
        for (int i = 0; i < order.size(); i++) {
            int y = TOP + LANE * i;
            String name = st.devices().getOrDefault(order.get(i), "device " + order.get(i));
            s.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>", LEFT - 6, y + LANE / 2 + 4,
                    Report.esc(name.length() > 30 ? name.substring(0, 29) + "…" : name)));
            s.append(String.format(Locale.ROOT, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#fafafa\" stroke=\"#ddd\"/>",
                    LEFT, y + 3, plot, LANE - 6));
        }
        for (Span sp : st.spans()) {
            int lane = order.indexOf(sp.device()), stage = stages.indexOf(sp.actor());
            double x = px.applyAsDouble(sp.startMs()), w = Math.max(0.8, sp.durationMs() / span * plot);
            int y = TOP + LANE * lane + 5, h = LANE - 10;
            String fill = sp.name().equals("update") ? "#888" : color(stage, stages.size(), sp.name());
            s.append(String.format(Locale.ROOT, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\" stroke=\"#fff\" stroke-width=\"0.5\">"
                    + "<title>%s %s, microbatch %d: %.2f ms</title></rect>", x, y, w, h, fill, Report.esc(sp.actor()), sp.name(), sp.microbatch(),
                    sp.durationMs()));
            String label = switch (sp.name()) {
                case "forward" -> "F";
                case "backward" -> "B";
                case "weights" -> "W";
                default -> "U";
            } + sp.microbatch();
            if (w >= 7 * label.length() + 2) {
                s.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"%s\" font-size=\"10\">%s</text>",
                        x + w / 2, y + h / 2 + 4, sp.name().equals("forward") ? "#222" : "#fff", label));
            }
        }
        return s.append("</svg>").toString();
    }

    /** A stage's colour: hues spread over the stages; a forward light, a backward dark, a split backward's W between. */
    private static String color(int stage, int stages, String span) {
        int lightness = switch (span) {
            case "forward" -> 72;
            case "weights" -> 52;
            default -> 38;
        };
        return String.format(Locale.ROOT, "hsl(%d,%d%%,%d%%)", Math.round(360.0 * stage / Math.max(1, stages)), 60, lightness);
    }
}
