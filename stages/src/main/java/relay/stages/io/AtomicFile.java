package relay.stages.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * A file written aside ({@code name.tmp}), synced, then moved into place: a reader never sees half of it, and
 * a crash never leaves half of it under its name.
 */
public final class AtomicFile {
    private AtomicFile() {}

    /** What goes into the file. */
    public interface Body {
        void write(FileChannel channel) throws IOException;
    }

    public static void write(Path file, Body body) throws IOException {
        Path aside = file.resolveSibling(file.getFileName() + ".tmp");
        try (FileChannel ch = FileChannel.open(aside, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                StandardOpenOption.WRITE)) {
            body.write(ch);
            ch.force(true);
        }
        Files.move(aside, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    public static void writeString(Path file, CharSequence text) throws IOException {
        write(file, ch -> writeFully(ch, ByteBuffer.wrap(text.toString().getBytes(StandardCharsets.UTF_8))));
    }

    static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) ch.write(b);
    }
}
