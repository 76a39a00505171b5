package relay.deploy.train;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import relay.optimizers.Method;
import relay.stages.io.FileWrites;

/**
 * report.html of a run directory, built from the run's own files — metrics.jsonl, history.log, trace.json —
 * so the run rewrites it as it goes and {@code relay report} rebuilds it for any run: one self-contained page
 * (inline SVG and CSS, no script, no network) with the loss (raw, smoothed, validation points, LISA's draws or
 * RSO's redraws marked), the learning rate, memory per category stacked, throughput, the pipeline's timeline
 * drawn from the trace, and the run's history. While the run goes on the page reloads itself.
 */
public final class Report {
    static final String FILE = "report.html";
    /** Seconds between a live report's reloads in the browser. */
    static final int RELOAD_SECONDS = 30;

    private Report() {}

    /** One point per step; val is NaN where no evaluation ran. */
    record Point(int step, double loss, double val, double lr, double tokensPerSecond, Map<String, Long> memory) {}

    /** Steps to mark on the loss chart's axis, and what they are. */
    record Marks(String name, List<Double> steps) {
        static final Marks NONE = new Marks("", List.of());

        /** LISA's draws, RSO's subspace redraws or GaLore's projector refreshes up to {@code done}, each period's first step. */
        static Marks of(TrainConfig c, int done) {
            TrainConfig.OptimizerPart o = c.optimizer();
            String name = o.samplesBlocks() ? "LISA draw" : o.method() == Method.RSO ? "RSO redraw" : o.method() == Method.GALORE ? "GaLore refresh" : null;
            if (name == null) return NONE;
            int period = o.samplesBlocks() ? o.lisa().period() : o.method() == Method.RSO ? o.lowRank().rsoPeriod() : o.lowRank().galoreGap();
            List<Double> steps = new ArrayList<>();
            for (int s = 1; s <= done; s += period) steps.add((double) s);
            return new Marks(name, steps);
        }
    }

    /** What the page says about the run: model, data, optimizer, batch, steps (and the engine, where known). */
    static Map<String, String> facts(TrainConfig c, String model, String engine, int done) {
        TrainConfig.OptimizerPart o = c.optimizer();
        Map<String, String> facts = new LinkedHashMap<>();
        facts.put("model", model);
        facts.put("data", c.run().data());
        facts.put("optimizer", o.method().key() + (o.samplesBlocks() ? ", LISA γ=" + o.lisa().gamma() + " every " + o.lisa().period() + " steps" : "")
                + ", lr " + o.lr());
        if (engine != null) facts.put("engine", engine);
        facts.put("batch", c.run().batch() + " × " + c.run().seq() + " tokens in " + c.pipeline().microbatches() + " microbatches, "
                + c.pipeline().mode().name().toLowerCase(Locale.ROOT) + " mode, " + c.pipeline().schedule().key());
        facts.put("steps", done + " of " + c.run().steps());
        return facts;
    }

    /**
     * Rebuilds the report of a run directory, finished or going on (then the page reloads itself), from its
     * files; returns the page. A directory that is not a run's is an error naming what is missing.
     */
    public static Path rebuild(Path run) throws IOException {
        Path settings = run.resolve("config.conf");
        if (!Files.isDirectory(run)) throw new IllegalArgumentException(run + ": no such run directory");
        if (!Files.isRegularFile(settings)) throw new IllegalArgumentException(run + ": not a run directory (no config.conf)");
        TrainConfig c;
        try {
            c = TrainConfig.from(com.typesafe.config.ConfigFactory.parseFile(settings.toFile()).atPath("relay.train")
                    .withFallback(com.typesafe.config.ConfigFactory.defaultReference()).resolve());
        } catch (RuntimeException e) {
            throw new IllegalArgumentException(settings + ": " + e.getMessage(), e);
        }
        int done = MetricsLog.read(run.resolve("metrics.jsonl")).size();
        write(run, "Relay training run " + run.toAbsolutePath().normalize().getFileName(), facts(c, c.model().name(), null, done),
                Marks.of(c, done), RunDirectory.live(run));
        return run.resolve(FILE);
    }

    /** Writes the run's report aside and moves it into place, so a browser never reads half a page. */
    static void write(Path run, String title, Map<String, String> facts, Marks marks, boolean live) throws IOException {
        List<Point> points = MetricsLog.read(run.resolve("metrics.jsonl"));
        StringBuilder h = pageStart(title, live ? "<meta http-equiv=\"refresh\" content=\"" + RELOAD_SECONDS + "\">" : "");
        if (live) h.append("<p class=\"live\">The run is going on: this page is rewritten at each evaluation and reloads every ")
                .append(RELOAD_SECONDS).append(" s.</p>");
        factsAndGrid(h, facts);
        card(h, "loss", "Loss", Chart.draw(lossSeries(points), "step", "loss", marks.steps(), marks.name()));
        card(h, "lr", "Learning rate", Chart.draw(List.of(series("lr", points, p -> p.lr(), Chart.Style.LINE)), "step", "lr", List.of(), ""));
        card(h, "memory", "Memory per category (peak per step, stacked; the top is the total)",
                Chart.draw(memorySeries(points), "step", "MiB", List.of(), ""));
        Chart.Series tps = series("tokens/s", points, Point::tokensPerSecond, Chart.Style.FAINT);
        card(h, "throughput", "Throughput", Chart.draw(List.of(tps, smoothed("tokens/s (smoothed)", tps)), "step", "tokens/s", List.of(), ""));
        h.append("</div>");
        timeline(h, run.resolve("trace.json"));
        List<String> history = RunHistory.read(run);
        if (!history.isEmpty()) {
            h.append("<h3>Run history</h3><ul>");
            history.forEach(n -> h.append("<li>").append(esc(n)).append("</li>"));
            h.append("</ul>");
        }
        h.append("</body></html>\n");
        FileWrites.writeString(run.resolve(FILE), h);
    }

    /** The pipeline's traced step as a Gantt chart, with its bubble against the schedule's theory; or why there is none. */
    private static void timeline(StringBuilder h, Path trace) throws IOException {
        h.append("<h3>Pipeline timeline</h3>");
        Gantt.Step step = Files.isRegularFile(trace) ? Gantt.lastStep(trace) : null;
        if (step == null) {
            h.append("<p>No traced pipeline step (the plain loop, or trace-steps = 0, or the trace is written after its steps).</p>");
            return;
        }
        h.append(String.format(Locale.ROOT, "<p>Step %d of the trace: bubble %.3f measured from these spans, %.3f in theory "
                + "((p − 1)/(m + p − 1) for p devices and m microbatches, the unsplit schedules' closed form). Forwards light, "
                + "backwards dark, weight gradients of a split backward (W) between, one colour per stage; grey: updates. "
                + "Open trace.json in ui.perfetto.dev for every span.</p>", step.step() + 1, step.bubble(), step.theory()));
        h.append("<div class=\"card\" id=\"timeline\">").append(Gantt.draw(step)).append("</div>");
    }

    static void card(StringBuilder h, String id, String title, String svg) {
        h.append("<div class=\"card\" id=\"").append(id).append("\"><h2>").append(esc(title)).append("</h2>").append(svg).append("</div>");
    }

    /** The training loss raw (faint) and smoothed, and validation losses as points. */
    private static List<Chart.Series> lossSeries(List<Point> points) {
        Chart.Series raw = series("train", points, Point::loss, Chart.Style.FAINT);
        return List.of(raw, smoothed("train (smoothed)", raw), series("validation", points, Point::val, Chart.Style.POINTS));
    }

    private static Chart.Series series(String name, List<Point> points, java.util.function.ToDoubleFunction<Point> y, Chart.Style style) {
        List<double[]> xy = new ArrayList<>();
        for (Point p : points) {
            double v = y.applyAsDouble(p);
            if (!Double.isNaN(v)) xy.add(new double[] {p.step(), v});
        }
        return new Chart.Series(name, xy, style);
    }

    /** A trailing mean over a window of a twentieth of the points (1 to 100). */
    static Chart.Series smoothed(String name, Chart.Series raw) {
        List<double[]> in = raw.points(), out = new ArrayList<>();
        int window = Math.max(1, Math.min(100, in.size() / 20));
        double sum = 0;
        for (int i = 0; i < in.size(); i++) {
            sum += in.get(i)[1];
            if (i >= window) sum -= in.get(i - window)[1];
            out.add(new double[] {in.get(i)[0], sum / Math.min(i + 1, window)});
        }
        return new Chart.Series(name, out, Chart.Style.LINE);
    }

    /** Memory per category in MiB, as stacked areas in the ledger's order. */
    private static List<Chart.Series> memorySeries(List<Point> points) {
        Map<String, List<double[]>> byCategory = new LinkedHashMap<>();
        for (Point p : points) {
            p.memory().forEach((c, b) -> byCategory.computeIfAbsent(c, k -> new ArrayList<>()).add(new double[] {p.step(), b / 1048576.0}));
        }
        List<Chart.Series> out = new ArrayList<>();
        byCategory.forEach((c, xy) -> out.add(new Chart.Series(c.replace('_', ' '), xy, Chart.Style.AREA)));
        return out;
    }

    /** A self-contained page's head (its style inline, {@code head} added to it) and its title, up to the body's content. */
    static StringBuilder pageStart(String title, String head) {
        return new StringBuilder("<!DOCTYPE html><html><head><meta charset=\"utf-8\">").append(head)
                .append("<title>").append(esc(title)).append("</title><style>")
                .append("body{font-family:sans-serif;margin:24px;color:#222;background:#fff}h1{font-size:20px}")
                .append("h2{font-size:15px;margin:4px 0 8px}h3{font-size:15px;margin-top:28px}table{border-collapse:collapse}")
                .append("td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}.live{color:#0072B2}")
                .append(".grid{display:flex;flex-wrap:wrap;gap:20px;margin-top:16px}.card{border:1px solid #ddd;border-radius:6px;padding:10px}")
                .append("</style></head><body><h1>").append(esc(title)).append("</h1>");
    }

    /** A table of facts, then the grid the cards go in (closed by the caller). */
    static void factsAndGrid(StringBuilder h, Map<String, String> facts) {
        h.append("<table>");
        facts.forEach((k, v) -> h.append("<tr><th>").append(esc(k)).append("</th><td>").append(esc(v)).append("</td></tr>"));
        h.append("</table><div class=\"grid\">");
    }

    static String esc(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }
}
