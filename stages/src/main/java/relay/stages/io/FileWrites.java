package relay.stages.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * The one way Relay writes a file: whole files are written aside ({@code name.tmp}), synced, then moved into
 * place, so a reader never sees half of one and a crash never leaves half of one under its name; logs grow a
 * record at a time. A write that fails — a full disk, a read-only directory — leaves nothing partial behind
 * (the file aside is removed, a log cut back to its last whole record) and is an {@link UnwritableFile}
 * naming the file and the cause. Every byte goes through the {@link Disk}, which is how tests fill one up.
 */
public final class FileWrites {
    private static volatile Disk disk = Disk.REAL;

    private FileWrites() {}

    /** What goes into the file. */
    public interface Body {
        void write(WritableByteChannel out) throws IOException;
    }

    public static void write(Path file, Body body) throws IOException {
        Path aside = file.resolveSibling(file.getFileName() + ".tmp");
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
            try (FileChannel ch = FileChannel.open(aside, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                    StandardOpenOption.WRITE)) {
                body.write(through(file, ch));
                ch.force(true);
            }
            Files.move(aside, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            deleteQuietly(aside, e);
            throw UnwritableFile.of(file, e);
        }
        syncDirectory(file.toAbsolutePath().getParent());
    }

    /**
     * The directory's entry for a file just moved in reaches the disk too (the file's own sync does not cover it), so
     * after a power loss a checkpoint's manifest is not there without its files, nor pruning done before the newer
     * checkpoint it made room for. Best effort: a file system that cannot sync a directory has the file whole anyway.
     */
    private static void syncDirectory(Path dir) {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException e) {
            // Best effort, as said: the file itself is written and in place.
        }
    }

    public static void writeString(Path file, CharSequence text) throws IOException {
        writeBytes(file, text.toString().getBytes(StandardCharsets.UTF_8));
    }

    public static void writeBytes(Path file, byte[] bytes) throws IOException {
        write(file, out -> writeFully(out, ByteBuffer.wrap(bytes)));
    }

    /** Appends one record to a log (creating it); a record cut short by a failure is cut off again. */
    public static void append(Path file, byte[] record) throws IOException {
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
                long whole = ch.size();
                ch.position(whole);
                try {
                    writeFully(through(file, ch), ByteBuffer.wrap(record));
                } catch (IOException e) {
                    try {
                        ch.truncate(whole);
                    } catch (IOException stuck) {
                        e.addSuppressed(stuck);
                    }
                    throw e;
                }
            }
        } catch (IOException e) {
            throw UnwritableFile.of(file, e);
        }
    }

    public static void appendString(Path file, CharSequence text) throws IOException {
        append(file, text.toString().getBytes(StandardCharsets.UTF_8));
    }

    public static void writeFully(WritableByteChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) ch.write(b);
    }

    /** Bytes free for files in {@code dir} (or the nearest directory above it that exists). */
    public static long free(Path dir) throws IOException {
        Path d = dir.toAbsolutePath();
        while (d.getParent() != null && !Files.isDirectory(d)) d = d.getParent();
        return disk.free(d);
    }

    /** Writes go to {@code d} from now on; returns the disk they went to before (tests put it back). */
    public static Disk use(Disk d) {
        Disk before = disk;
        disk = d;
        return before;
    }

    /** A channel whose every write the disk is asked for first. */
    private static WritableByteChannel through(Path file, WritableByteChannel ch) {
        Disk d = disk;
        return new WritableByteChannel() {
            @Override
            public int write(ByteBuffer src) throws IOException {
                d.reserve(file, src.remaining());
                return ch.write(src);
            }

            @Override
            public boolean isOpen() {
                return ch.isOpen();
            }

            @Override
            public void close() throws IOException {
                ch.close();
            }
        };
    }

    private static void deleteQuietly(Path f, IOException cause) {
        try {
            Files.deleteIfExists(f);
        } catch (IOException e) {
            cause.addSuppressed(e);
        }
    }

    /** The storage under the writes: the file system's, or in tests one that fills up. */
    public interface Disk {
        Disk REAL = new Disk() {
            @Override
            public long free(Path dir) throws IOException {
                return Files.getFileStore(dir).getUsableSpace();
            }

            @Override
            public void reserve(Path file, long bytes) {}
        };

        /** Bytes free for files in {@code dir}, an existing directory. */
        long free(Path dir) throws IOException;

        /** Called before {@code bytes} more are written to {@code file}: throws, as a full disk's write does, when they do not fit. */
        void reserve(Path file, long bytes) throws IOException;
    }
}
