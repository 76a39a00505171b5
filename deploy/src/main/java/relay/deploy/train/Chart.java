package relay.deploy.train;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * An inline SVG chart that reads at a glance: round tick values on both axes (whole steps on the x axis, which
 * spans the steps run),
 * light grid lines, a distinct colour and dash per series, a legend under the plot that wraps to fit, and
 * optional marks on the x axis (LISA's draws, RSO's redraws). Series are lines, faint lines (raw values
 * under their smoothed line), points (validation) or stacked areas (memory per category, the total on top).
 */
final class Chart {
    enum Style { LINE, FAINT, POINTS, AREA }

    record Series(String name, List<double[]> points, Style style) {}

    /** Colour-blind-safe colours (Okabe and Ito), then dashes, so series differ in two ways. */
    private static final String[] COLORS = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"};
    private static final String[] DASHES = {"", "6,3", "2,2", "8,3,2,3", "", "6,3", "2,2", "8,3,2,3"};

    static final int WIDTH = 480;
    private static final int LEFT = 62, RIGHT = 14, TOP = 12, PLOT_HEIGHT = 200, CHAR = 7;

    private Chart() {}

    /**
     * The chart of these series; {@code stacked} piles AREA series in order, so the top edge is their total.
     * {@code marks} are x values drawn as ticks along the top of the plot, named {@code marksName} in the legend.
     */
    static String draw(List<Series> series, String xLabel, String yLabel, List<Double> marks, String marksName) {
        List<Series> shown = series.stream().filter(s -> s.points().stream().anyMatch(p -> Double.isFinite(p[1]))).toList();
        if (shown.isEmpty()) {
            return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + WIDTH + "\" height=\"40\" font-size=\"11\">"
                    + "<text x=\"10\" y=\"20\">no data yet</text></svg>";
        }
        List<Series> drawn = stack(shown);
        double x0 = Double.MAX_VALUE, x1 = -Double.MAX_VALUE, y0 = Double.MAX_VALUE, y1 = -Double.MAX_VALUE;
        boolean areas = false;
        for (Series s : drawn) {
            areas |= s.style() == Style.AREA;
            for (double[] p : s.points()) {
                if (!Double.isFinite(p[1])) continue;
                x0 = Math.min(x0, p[0]);
                x1 = Math.max(x1, p[0]);
                y0 = Math.min(y0, p[1]);
                y1 = Math.max(y1, p[1]);
            }
        }
        if (areas) y0 = Math.min(0, y0);
        // The step axis spans the steps run, ticked inside; the value axis is widened to round ticks around the data.
        double fx0 = x0, fx1 = x1 == x0 ? x0 + 1 : x1;
        double[] xt = java.util.Arrays.stream(ticks(fx0, fx1, 6, true)).filter(v -> v >= fx0 - 1e-9 && v <= fx1 + 1e-9).toArray();
        double[] yt = ticks(y0, y1 == y0 ? y0 + 1 : y1, 5, false);
        double ax0 = fx0, ax1 = fx1, ay0 = yt[0], ay1 = yt[yt.length - 1];
        int plotWidth = WIDTH - LEFT - RIGHT;
        java.util.function.DoubleUnaryOperator px = x -> LEFT + (x - ax0) / (ax1 - ax0) * plotWidth;
        java.util.function.DoubleUnaryOperator py = y -> TOP + (1 - (y - ay0) / (ay1 - ay0)) * PLOT_HEIGHT;

        List<String> legend = new ArrayList<>();
        for (int i = 0; i < shown.size(); i++) legend.add(shown.get(i).name());
        if (!marks.isEmpty()) legend.add(marksName);
        List<int[]> at = legendLayout(legend, plotWidth);
        int height = TOP + PLOT_HEIGHT + 34 + 16 * (at.isEmpty() ? 0 : at.get(at.size() - 1)[1] + 1);

        StringBuilder s = new StringBuilder(String.format(Locale.ROOT,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-size=\"11\" font-family=\"sans-serif\">",
                WIDTH, height));
        String[] xLabels = labels(xt), yLabels = labels(yt);
        for (int k = 0; k < yt.length; k++) {
            double y = py.applyAsDouble(yt[k]);
            s.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e6e6e6\"/>", LEFT, y, LEFT + plotWidth, y));
            s.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>", LEFT - 5, y + 4, yLabels[k]));
        }
        for (int k = 0; k < xt.length; k++) {
            double x = px.applyAsDouble(xt[k]);
            s.append(String.format(Locale.ROOT, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e6e6e6\"/>", x, TOP, x, TOP + PLOT_HEIGHT));
            s.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>", x, TOP + PLOT_HEIGHT + 14,
                    xLabels[k]));
        }
        s.append(String.format(Locale.ROOT, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>",
                LEFT, TOP, plotWidth, PLOT_HEIGHT));
        s.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>", LEFT + plotWidth / 2,
                TOP + PLOT_HEIGHT + 28, Report.esc(xLabel)));
        s.append(String.format(Locale.ROOT, "<text transform=\"translate(12,%d) rotate(-90)\" text-anchor=\"middle\">%s</text>",
                TOP + PLOT_HEIGHT / 2, Report.esc(yLabel)));

        // Areas first, from the top layer down, so each lower layer paints over the one above it.
        for (int i = drawn.size() - 1; i >= 0; i--) {
            if (drawn.get(i).style() == Style.AREA) area(s, drawn.get(i), COLORS[i % COLORS.length], px, py);
        }
        for (int i = 0; i < drawn.size(); i++) {
            Series d = drawn.get(i);
            if (d.style() != Style.AREA) line(s, d, COLORS[i % COLORS.length], DASHES[i % DASHES.length], px, py);
        }
        for (double m : marks) {
            double x = px.applyAsDouble(m);
            s.append(String.format(Locale.ROOT, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#777\" stroke-width=\"1.5\"/>",
                    x, TOP, x, TOP + 8));
        }
        int legendTop = TOP + PLOT_HEIGHT + 44;
        for (int i = 0; i < legend.size(); i++) {
            int x = LEFT + at.get(i)[0], y = legendTop + 16 * at.get(i)[1];
            boolean mark = i == shown.size();
            Style style = mark ? Style.LINE : shown.get(i).style();
            String color = mark ? "#777" : COLORS[i % COLORS.length];
            if (mark) {
                s.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"1.5\"/>",
                        x + 8, y - 8, x + 8, y, color));
            } else if (style == Style.POINTS) {
                s.append(String.format(Locale.ROOT, "<circle cx=\"%d\" cy=\"%d\" r=\"3\" fill=\"%s\"/>", x + 8, y - 4, color));
            } else if (style == Style.AREA) {
                s.append(String.format(Locale.ROOT, "<rect x=\"%d\" y=\"%d\" width=\"16\" height=\"9\" fill=\"%s\" fill-opacity=\"0.55\"/>",
                        x, y - 8, color));
            } else {
                s.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"%s%s/>",
                        x, y - 4, x + 16, y - 4, color, dash(DASHES[i % DASHES.length]), style == Style.FAINT ? " stroke-opacity=\"0.35\"" : ""));
            }
            s.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\">%s</text>", x + 20, y, Report.esc(legend.get(i))));
        }
        return s.append("</svg>").toString();
    }

    /** AREA series become cumulative sums in order (the first at the bottom); other series are unchanged. */
    private static List<Series> stack(List<Series> series) {
        List<Series> out = new ArrayList<>();
        java.util.Map<Double, Double> below = new java.util.HashMap<>();
        for (Series s : series) {
            if (s.style() != Style.AREA) {
                out.add(s);
                continue;
            }
            List<double[]> pts = new ArrayList<>();
            for (double[] p : s.points()) {
                double base = below.getOrDefault(p[0], 0.0), top = base + (Double.isFinite(p[1]) ? p[1] : 0);
                below.put(p[0], top);
                pts.add(new double[] {p[0], top, base});
            }
            out.add(new Series(s.name(), pts, Style.AREA));
        }
        return out;
    }

    /** A stacked layer: its top edge left to right, then its base right to left. */
    private static void area(StringBuilder s, Series top, String color, java.util.function.DoubleUnaryOperator px,
                             java.util.function.DoubleUnaryOperator py) {
        StringBuilder pts = new StringBuilder();
        List<double[]> p = top.points();
        for (double[] q : p) pts.append(String.format(Locale.ROOT, "%.1f,%.1f ", px.applyAsDouble(q[0]), py.applyAsDouble(q[1])));
        for (int i = p.size() - 1; i >= 0; i--) {
            pts.append(String.format(Locale.ROOT, "%.1f,%.1f ", px.applyAsDouble(p.get(i)[0]), py.applyAsDouble(p.get(i)[2])));
        }
        s.append("<polygon fill=\"").append(color).append("\" fill-opacity=\"0.55\" stroke=\"").append(color)
                .append("\" stroke-width=\"0.8\" points=\"").append(pts).append("\"/>");
    }

    private static void line(StringBuilder s, Series d, String color, String dash, java.util.function.DoubleUnaryOperator px,
                             java.util.function.DoubleUnaryOperator py) {
        if (d.style() == Style.POINTS) {
            for (double[] p : d.points()) {
                if (!Double.isFinite(p[1])) continue;
                s.append(String.format(Locale.ROOT, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", px.applyAsDouble(p[0]),
                        py.applyAsDouble(p[1]), color));
            }
            return;
        }
        StringBuilder pts = new StringBuilder();
        for (double[] p : d.points()) {
            if (Double.isFinite(p[1])) pts.append(String.format(Locale.ROOT, "%.1f,%.1f ", px.applyAsDouble(p[0]), py.applyAsDouble(p[1])));
        }
        s.append("<polyline fill=\"none\" stroke-width=\"").append(d.style() == Style.FAINT ? "1" : "1.8").append("\" stroke=\"")
                .append(color).append('"').append(d.style() == Style.FAINT ? " stroke-opacity=\"0.35\"" : dash(dash))
                .append(" points=\"").append(pts).append("\"/>");
    }

    private static String dash(String pattern) {
        return pattern.isEmpty() ? "" : " stroke-dasharray=\"" + pattern + "\"";
    }

    /** Each legend entry's x offset and row: entries flow left to right and wrap at the plot's width. */
    private static List<int[]> legendLayout(List<String> names, int width) {
        List<int[]> at = new ArrayList<>();
        int x = 0, row = 0;
        for (String n : names) {
            int w = 28 + CHAR * n.length();
            if (x > 0 && x + w > width) {
                x = 0;
                row++;
            }
            at.add(new int[] {x, row});
            x += w;
        }
        return at;
    }

    /**
     * Round tick values covering [lo, hi]: about {@code target} of them, 1, 2 or 5 times a power of ten apart
     * (whole numbers when {@code whole}); the first and last enclose the data.
     */
    static double[] ticks(double lo, double hi, int target, boolean whole) {
        double raw = (hi - lo) / Math.max(1, target - 1), magnitude = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / magnitude;
        double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * magnitude;
        if (whole) step = Math.max(1, Math.round(step));
        // Whole multiples of the step, so no tick carries the rounding of a sum.
        long first = (long) Math.floor(lo / step + 1e-9), last = (long) Math.ceil(hi / step - 1e-9);
        double[] t = new double[(int) (last - first + 1)];
        for (int i = 0; i < t.length; i++) t[i] = (first + i) * step;
        return t;
    }

    /**
     * Tick labels with the decimals that tell them apart (none for whole steps), or all in scientific notation
     * where the values are that small or large.
     */
    static String[] labels(double[] ticks) {
        double step = ticks.length < 2 ? 1 : ticks[1] - ticks[0], max = 0;
        for (double v : ticks) max = Math.max(max, Math.abs(v));
        boolean scientific = max >= 1e6 || (max > 0 && max < 1e-2);
        int decimals = Math.max(0, (int) -Math.floor(Math.log10(step) + 1e-9));
        String[] out = new String[ticks.length];
        for (int i = 0; i < ticks.length; i++) {
            out[i] = scientific ? String.format(Locale.ROOT, "%.1e", ticks[i]) : String.format(Locale.ROOT, "%." + decimals + "f", ticks[i]);
        }
        return out;
    }
}
