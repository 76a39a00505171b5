package relay.deploy.train;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * report.html: one self-contained page (inline SVG and CSS, no script, no network) with the loss curves,
 * the learning rate, memory per category, throughput and a summary of the pipeline's timeline.
 */
final class Report {
    private Report() {}

    /** One point per step; val is NaN where no evaluation ran. */
    record Point(int step, double loss, double val, double lr, double tokensPerSecond, Map<String, Long> memory) {}

    /** @param history the run's events, a line each (started, resumed, failed, restarted, stopped, finished) */
    static void write(Path file, String title, Map<String, String> facts, List<Point> points, double[] busy,
                      List<String> history) throws IOException {
        StringBuilder h = new StringBuilder();
        h.append("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>").append(esc(title)).append("</title><style>")
                .append("body{font-family:sans-serif;margin:24px;color:#222;background:#fff}h1{font-size:20px}")
                .append("h2{font-size:16px;margin-top:28px}table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}")
                .append(".grid{display:flex;flex-wrap:wrap;gap:24px}.card{border:1px solid #ddd;border-radius:6px;padding:10px}")
                .append("</style></head><body><h1>").append(esc(title)).append("</h1><table>");
        facts.forEach((k, v) -> h.append("<tr><th>").append(esc(k)).append("</th><td>").append(esc(v)).append("</td></tr>"));
        h.append("</table><div class=\"grid\">");
        List<double[]> train = new ArrayList<>(), val = new ArrayList<>(), lr = new ArrayList<>(), tps = new ArrayList<>();
        Map<String, List<double[]>> mem = new LinkedHashMap<>();
        for (Point p : points) {
            train.add(new double[] {p.step(), p.loss()});
            if (!Double.isNaN(p.val())) val.add(new double[] {p.step(), p.val()});
            lr.add(new double[] {p.step(), p.lr()});
            tps.add(new double[] {p.step(), p.tokensPerSecond()});
            p.memory().forEach((c, b) -> mem.computeIfAbsent(c, k -> new ArrayList<>()).add(new double[] {p.step(), b / 1048576.0}));
        }
        Map<String, List<double[]>> losses = new LinkedHashMap<>();
        losses.put("train", train);
        losses.put("validation", val);
        card(h, "Loss", chart(losses, "step", "loss"));
        card(h, "Learning rate", chart(Map.of("lr", lr), "step", "lr"));
        card(h, "Memory per category (peak per step, MiB)", chart(mem, "step", "MiB"));
        card(h, "Throughput (tokens/s)", chart(Map.of("tokens/s", tps), "step", "tokens/s"));
        h.append("</div>");
        if (busy.length > 0) {
            h.append("<h2>Pipeline timeline (last step)</h2><table><tr><th>device</th><th>busy</th><th>idle</th></tr>");
            for (int d = 0; d < busy.length; d++) {
                h.append(String.format(Locale.ROOT, "<tr><td>%d</td><td>%.1f%%</td><td>%.1f%%</td></tr>", d, 100 * busy[d], 100 * (1 - busy[d])));
            }
            h.append("</table>");
        }
        if (!history.isEmpty()) {
            h.append("<h2>Run history</h2><ul>");
            history.forEach(n -> h.append("<li>").append(esc(n)).append("</li>"));
            h.append("</ul>");
        }
        h.append("</body></html>\n");
        Files.writeString(file, h, StandardCharsets.UTF_8);
    }

    private static void card(StringBuilder h, String title, String svg) {
        h.append("<div class=\"card\"><h2>").append(esc(title)).append("</h2>").append(svg).append("</div>");
    }

    private static final String[] COLORS = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};

    /** A line chart of named series of (x, y) points, with axes labelled at their ends. */
    static String chart(Map<String, List<double[]>> series, String xLabel, String yLabel) {
        int w = 460, hgt = 272, l = 60, r = 10, t = 10, b = 56;
        double x0 = Double.MAX_VALUE, x1 = -Double.MAX_VALUE, y0 = Double.MAX_VALUE, y1 = -Double.MAX_VALUE;
        for (List<double[]> s : series.values()) {
            for (double[] p : s) {
                if (!Double.isFinite(p[1])) continue;
                x0 = Math.min(x0, p[0]);
                x1 = Math.max(x1, p[0]);
                y0 = Math.min(y0, p[1]);
                y1 = Math.max(y1, p[1]);
            }
        }
        StringBuilder s = new StringBuilder(String.format(Locale.ROOT,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-size=\"11\">", w, hgt));
        if (x0 > x1) return s.append("<text x=\"10\" y=\"20\">no data</text></svg>").toString();
        if (x1 == x0) x1 = x0 + 1;
        if (y1 == y0) y1 = y0 + 1;
        double fx0 = x0, fx1 = x1, fy0 = y0, fy1 = y1;
        java.util.function.DoubleUnaryOperator px = x -> l + (x - fx0) / (fx1 - fx0) * (w - l - r);
        java.util.function.DoubleUnaryOperator py = y -> t + (1 - (y - fy0) / (fy1 - fy0)) * (hgt - t - b);
        s.append(String.format(Locale.ROOT, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>", l, t, w - l - r, hgt - t - b));
        s.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\">%s</text><text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>",
                l, hgt - b + 14, num(x0), w - r, hgt - b + 14, num(x1)));
        s.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text><text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>",
                l - 4, t + 10, num(y1), l - 4, hgt - b, num(y0)));
        s.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>", (l + w) / 2, hgt - b + 14, esc(xLabel)));
        int i = 0, legendX = l;
        for (Map.Entry<String, List<double[]>> e : series.entrySet()) {
            String color = COLORS[i++ % COLORS.length];
            StringBuilder pts = new StringBuilder();
            for (double[] p : e.getValue()) {
                if (Double.isFinite(p[1])) pts.append(String.format(Locale.ROOT, "%.1f,%.1f ", px.applyAsDouble(p[0]), py.applyAsDouble(p[1])));
            }
            s.append("<polyline fill=\"none\" stroke-width=\"1.5\" stroke=\"").append(color).append("\" points=\"").append(pts).append("\"/>");
            // The legend runs under the chart, where no line can cross it.
            s.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" fill=\"%s\">%s</text>", legendX, hgt - 8, color, esc(e.getKey())));
            legendX += 8 + 7 * e.getKey().length();
        }
        return s.append("</svg>").toString();
    }

    private static String num(double v) {
        return Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v != 0) ? String.format(Locale.ROOT, "%.2e", v)
                : String.format(Locale.ROOT, "%.3g", v);
    }

    static String esc(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }
}
