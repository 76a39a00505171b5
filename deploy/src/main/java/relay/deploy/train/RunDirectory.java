package relay.deploy.train;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigRenderOptions;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetAddress;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.Comparator;
import java.util.stream.Stream;
import relay.stages.io.FileWrites;
import relay.stages.io.UnwritableFile;

/**
 * A run's directory, held by one process for the run's life: an OS lock on its {@code relay.lock} refuses a
 * second writer with a line naming the holder. The operating system releases the lock when the holder's
 * process ends, however it ends, so a killed run never blocks its resume. A directory this process created
 * for a run that then failed before its first step is removed again: bad input leaves nothing behind.
 */
final class RunDirectory implements AutoCloseable {
    static final String LOCK = "relay.lock";

    private final Path dir;
    private final FileChannel channel;
    private final FileLock lock;
    private final boolean created;
    private boolean used;

    private RunDirectory(Path dir, FileChannel channel, FileLock lock, boolean created) {
        this.dir = dir;
        this.channel = channel;
        this.lock = lock;
        this.created = created;
    }

    /**
     * A new run's directory under out, created and held: time, model and method, with a suffix if that name is taken.
     * Creating it is what claims the name, so runs started in the same second, in other processes too, never share one.
     */
    static RunDirectory fresh(TrainConfig c) throws IOException {
        String name = Path.of(c.model().name()).getFileName().toString().replaceAll("[^A-Za-z0-9._-]", "_");
        String stamp = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss"));
        Path base = Path.of(c.run().out()).resolve(stamp + "-" + name + "-" + c.optimizer().method().key());
        try {
            Files.createDirectories(base.getParent());
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot create the run directory " + base + ": " + UnwritableFile.why(e), e);
        }
        for (int i = 1; ; i++) {
            Path dir = i == 1 ? base : base.resolveSibling(base.getFileName() + "-" + i);
            try {
                Files.createDirectory(dir);
            } catch (FileAlreadyExistsException taken) {
                continue;
            } catch (IOException e) {
                throw new IllegalArgumentException("cannot create the run directory " + dir + ": " + UnwritableFile.why(e), e);
            }
            return open(dir, true);
        }
    }

    /** Whether a process holds the directory now: a run is going on in it. Takes nothing: the lock is let go at once. */
    static boolean live(Path dir) throws IOException {
        Path file = dir.resolve(LOCK);
        if (!Files.isRegularFile(file)) return false;
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            FileLock lock = channel.tryLock();
            if (lock == null) return true;
            lock.release();
            return false;
        } catch (OverlappingFileLockException heldHere) {
            return true;
        }
    }

    /** Creates the directory if needed and takes its lock; a directory another process holds is refused, naming it. */
    static RunDirectory open(Path dir) throws IOException {
        return open(dir, !Files.exists(dir));
    }

    private static RunDirectory open(Path dir, boolean created) throws IOException {
        try {
            Files.createDirectories(dir.resolve("checkpoints"));
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot create the run directory " + dir + ": " + UnwritableFile.why(e), e);
        }
        Path file = dir.resolve(LOCK);
        FileChannel channel;
        try {
            channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
        } catch (IOException e) {
            throw new IllegalArgumentException(UnwritableFile.of(file, e).getMessage() + "; a run needs a directory it can write", e);
        }
        FileLock lock;
        try {
            lock = channel.tryLock();
        } catch (OverlappingFileLockException heldHere) {
            lock = null;
        }
        if (lock == null) {
            channel.close();
            String holder = Files.readString(file, StandardCharsets.UTF_8).strip();
            throw new IllegalArgumentException(dir + " is in use by another relay train (" + (holder.isEmpty() ? "a process that is starting"
                    : holder) + "): a run directory has one writer at a time; wait for that run to end, or stop it");
        }
        channel.truncate(0);
        channel.write(ByteBuffer.wrap(("pid " + ProcessHandle.current().pid() + " on " + host() + " since "
                + LocalDateTime.now().format(DateTimeFormatter.ISO_LOCAL_DATE_TIME) + "\n").getBytes(StandardCharsets.UTF_8)));
        channel.force(false);
        return new RunDirectory(dir, channel, lock, created);
    }

    private static String host() {
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            return "an unnamed host";
        }
    }

    Path path() {
        return dir;
    }

    Path resolve(String name) {
        return dir.resolve(name);
    }

    /** A step has been recorded here: the directory is the run's now, whatever happens after. */
    void markUsed() {
        used = true;
    }

    boolean used() {
        return used;
    }

    /** config.conf, written aside and moved into place: a resumed run reads it, so a stop must not leave half of it. */
    void writeSettings(Config resolved) throws IOException {
        FileWrites.writeString(dir.resolve("config.conf"), resolved.getConfig("relay.train").root()
                .render(ConfigRenderOptions.defaults().setOriginComments(false).setJson(false)));
    }

    void history(String event) throws IOException {
        RunHistory.add(dir, event);
    }

    /** The same for an event the run goes on after: a history.log that cannot be written is told on {@code out}. */
    void history(String event, PrintStream out) {
        try {
            history(event);
        } catch (IOException e) {
            out.println("history.log: " + e.getMessage());
        }
    }

    /** After a failure: a directory this process created and no step was recorded in goes again. */
    void discardIfUnused() throws IOException {
        if (used || !created) return;
        close();
        try (Stream<Path> all = Files.walk(dir)) {
            for (Path p : all.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
        }
    }

    @Override
    public void close() throws IOException {
        if (!channel.isOpen()) return;
        lock.release();
        channel.close();
    }
}
