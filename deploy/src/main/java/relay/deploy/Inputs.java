package relay.deploy;

import java.nio.file.Files;
import java.nio.file.Path;
import picocli.CommandLine;

/**
 * Command-line input at the edge: paths made absolute once, as they are parsed, and options checked before
 * a command reads or writes anything. A failed check is one line naming the option, what it allows and
 * what it got.
 */
final class Inputs {
    private Inputs() {}

    /** picocli's converter for every path option: relative paths mean the same file in every command and every file a run writes. */
    static Path path(String s) {
        if (s.isBlank()) throw new CommandLine.TypeConversionException("an empty path");
        return Path.of(s).toAbsolutePath().normalize();
    }

    static void require(boolean ok, String option, String allowed, Object value) {
        if (!ok) throw new IllegalArgumentException(option + " must be " + allowed + ", not " + value);
    }

    /** A value parsed from an option, a parse error becoming one that names the option. */
    static <T> T parsed(String option, java.util.function.Supplier<T> parse) {
        try {
            return parse.get();
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(option + ": " + e.getMessage(), e);
        }
    }

    /** A file the command will write: not a directory, and its nearest existing ancestor a writable directory. Creates nothing. */
    static void writableFile(Path file, String option) {
        if (file == null) return;
        if (Files.isDirectory(file)) throw new IllegalArgumentException(option + " " + file + " is a directory, not a file to write");
        writableAncestor(file.getParent(), option, file);
    }

    /** A directory the command will write into: a directory if it exists, else creatable. Creates nothing. */
    static void writableDirectory(Path dir, String option) {
        if (Files.exists(dir) && !Files.isDirectory(dir)) {
            throw new IllegalArgumentException(option + " " + dir + " is a file, not a directory");
        }
        writableAncestor(dir, option, dir);
    }

    private static void writableAncestor(Path from, String option, Path target) {
        Path p = from;
        while (p != null && !Files.exists(p)) p = p.getParent();
        if (p == null) return;
        if (!Files.isDirectory(p)) throw new IllegalArgumentException(option + " " + target + ": " + p + " is a file, not a directory");
        if (!Files.isWritable(p)) throw new IllegalArgumentException(option + " " + target + ": " + p + " is not writable");
    }
}
