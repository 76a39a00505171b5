package relay.stages.io;

import java.io.IOException;
import java.nio.file.FileSystemException;
import java.nio.file.Path;

/** A file that could not be written, and why ("cannot write runs/x/metrics.jsonl: No space left on device"). */
public final class UnwritableFile extends IOException {
    private static final long serialVersionUID = 1L;

    /** The same failure told by another JVM (a stage writing its shard), as its message. */
    public UnwritableFile(String message) {
        super(message);
    }

    private UnwritableFile(Path file, IOException cause) {
        super("cannot write " + file + ": " + why(cause), cause);
    }

    /** {@code e}, a failure to write {@code file}, told as one. */
    public static UnwritableFile of(Path file, IOException e) {
        return e instanceof UnwritableFile u ? u : new UnwritableFile(file, e);
    }

    /** The cause alone: a file system's message repeats the path (of the file aside) before its reason. */
    public static String why(IOException e) {
        if (e instanceof java.nio.file.AccessDeniedException) return "permission denied";
        if (e instanceof FileSystemException f) return f.getReason() != null ? f.getReason() : e.getClass().getSimpleName() + " " + f.getFile();
        return e.getMessage() != null ? e.getMessage() : e.toString();
    }
}
