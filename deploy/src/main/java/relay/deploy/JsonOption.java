package relay.deploy;

import com.google.gson.GsonBuilder;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import picocli.CommandLine.Option;
import relay.stages.io.FileWrites;

/** {@code --json FILE}: a command's results as pretty JSON, the file checked before the command starts its work. */
final class JsonOption implements CheckedOptions {
    @Option(names = "--json", description = "also write the results as JSON to this file")
    Path file;

    /** Refuses a file that could not be written, before any work is done. */
    @Override
    public void check() {
        Inputs.writableFile(file, "--json");
    }

    /** Writes the value, creating parent directories; does nothing without --json. */
    void write(Object value) {
        if (file == null) return;
        try {
            FileWrites.writeString(file, new GsonBuilder().setPrettyPrinting().serializeSpecialFloatingPointValues()
                    .create().toJson(value) + "\n");
        } catch (IOException e) {
            throw new UncheckedIOException(e.getMessage(), e);
        }
    }

    /** Bytes per memory category as JSON: keyed by the category's name, in the categories' order. */
    static java.util.Map<String, Long> byCategory(java.util.Map<relay.stages.memory.Category, Long> bytes) {
        java.util.Map<String, Long> out = new java.util.LinkedHashMap<>();
        bytes.forEach((c, b) -> out.put(c.key(), b));
        return out;
    }
}
