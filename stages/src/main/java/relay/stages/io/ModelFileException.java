package relay.stages.io;

import java.nio.file.Path;

/** A model file that cannot be used, with the file and the problem in the message. */
public final class ModelFileException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public ModelFileException(Path file, String problem) {
        super(file + ": " + problem);
    }

    public ModelFileException(Path file, String problem, Throwable cause) {
        super(file + ": " + problem, cause);
    }
}
