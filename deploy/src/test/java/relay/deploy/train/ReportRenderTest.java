package relay.deploy.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A tiny run's report rendered by headless Chromium, as a person's browser would: every chart is in the page
 * as loaded, and the browser logs no error. Skipped, saying why, where no Chromium is installed
 * ({@code apt install chromium}; or RELAY_CHROMIUM names the browser).
 */
class ReportRenderTest {
    @TempDir
    Path dir;

    private static Path chromium() {
        String named = System.getenv("RELAY_CHROMIUM");
        if (named != null && !named.isBlank()) return Path.of(named);
        for (String name : List.of("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")) {
            for (String d : System.getenv().getOrDefault("PATH", "").split(java.io.File.pathSeparator)) {
                Path p = Path.of(d, name);
                if (Files.isExecutable(p)) return p;
            }
        }
        return null;
    }

    @Test
    void aTinyRunsReportRendersEveryChartWithNoConsoleError() throws Exception {
        Path browser = chromium();
        assumeTrue(browser != null, "no Chromium on this machine (apt install chromium, or set RELAY_CHROMIUM): the report is not rendered");
        Path run = ReportTest.tinyRun(dir);
        Path dom = dir.resolve("dom.html"), log = dir.resolve("chromium.log");
        Process p = new ProcessBuilder(browser.toString(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--user-data-dir=" + dir.resolve("profile"), "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000",
                "--dump-dom", run.resolve("report.html").toUri().toString())
                .redirectOutput(dom.toFile()).redirectError(log.toFile()).start();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "Chromium did not finish within 2 minutes");
        String page = Files.readString(dom, StandardCharsets.UTF_8), said = Files.readString(log, StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), said);
        for (String id : List.of("loss", "lr", "memory", "throughput", "timeline")) {
            Matcher card = Pattern.compile("id=\"" + id + "\"[^>]*>(?:(?!</div>).)*?<svg", Pattern.DOTALL).matcher(page);
            assertTrue(card.find(), "the " + id + " chart is rendered: " + page.length() + " characters of DOM");
        }
        try (Stream<String> lines = said.lines()) {
            List<String> errors = lines.filter(l -> l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Refused to")).toList();
            assertFalse(!errors.isEmpty(), "console errors: " + errors);
        }
    }
}
