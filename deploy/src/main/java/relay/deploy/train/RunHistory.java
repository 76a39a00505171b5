package relay.deploy.train;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import relay.stages.io.FileWrites;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.List;

/**
 * history.log in a run directory: a line per event of the run's life — started, resumed, a step failed,
 * restarted, stopped by a signal, finished — kept across resumes, so the report can tell what the run went
 * through.
 */
final class RunHistory {
    private static final String FILE = "history.log";
    private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss");

    private RunHistory() {}

    static void add(Path run, String event) throws IOException {
        FileWrites.appendString(run.resolve(FILE), LocalDateTime.now().format(TIME) + "  " + event + "\n");
    }

    static List<String> read(Path run) throws IOException {
        Path f = run.resolve(FILE);
        return Files.isRegularFile(f) ? Files.readAllLines(f, StandardCharsets.UTF_8) : List.of();
    }
}
