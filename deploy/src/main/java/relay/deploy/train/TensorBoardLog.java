package relay.deploy.train;

import com.google.protobuf.ByteString;
import com.google.protobuf.CodedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.zip.CRC32C;
import relay.stages.io.FileWrites;

/**
 * The run's metrics as a TensorBoard event file ({@code events.out.tfevents.<seconds>.<host>} in the run
 * directory), so {@code tensorboard --logdir runs} shows loss, validation loss, learning rate, tokens/s and
 * memory per category. Each event is a TFRecord (length, masked CRC-32C of the length, the Event message,
 * its masked CRC-32C) holding an Event — wall time, step, and a Summary of tagged scalars — encoded field by
 * field as TensorBoard's event.proto and summary.proto number them. Each start or resume of a run writes a
 * file of its own, as TensorBoard expects of a restarted writer.
 */
final class TensorBoardLog {
    private final Path file;

    private TensorBoardLog(Path file) {
        this.file = file;
    }

    /** A new event file in the run directory, opened with the file-version event TensorBoard reads first. */
    static TensorBoardLog create(Path run) throws IOException {
        long now = System.currentTimeMillis();
        String host;
        try {
            host = InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            host = "localhost";
        }
        Path file = run.resolve("events.out.tfevents." + now / 1000 + "." + host);
        for (int i = 1; Files.exists(file); i++) file = run.resolve("events.out.tfevents." + now / 1000 + "." + host + "." + i);
        TensorBoardLog log = new TensorBoardLog(file);
        ByteArrayOutputStream event = new ByteArrayOutputStream();
        CodedOutputStream e = CodedOutputStream.newInstance(event);
        e.writeDouble(1, now / 1000.0);
        e.writeString(3, "brain.Event:2");
        e.flush();
        log.record(event.toByteArray());
        return log;
    }

    /** One step's scalars, by tag. */
    void scalars(int step, Map<String, Double> values) throws IOException {
        ByteArrayOutputStream summary = new ByteArrayOutputStream();
        CodedOutputStream s = CodedOutputStream.newInstance(summary);
        for (Map.Entry<String, Double> v : values.entrySet()) {
            if (v.getValue() == null || v.getValue().isNaN()) continue;
            ByteArrayOutputStream value = new ByteArrayOutputStream();
            CodedOutputStream o = CodedOutputStream.newInstance(value);
            o.writeString(1, v.getKey());
            o.writeFloat(2, v.getValue().floatValue());
            o.flush();
            s.writeBytes(1, ByteString.copyFrom(value.toByteArray()));
        }
        s.flush();
        ByteArrayOutputStream event = new ByteArrayOutputStream();
        CodedOutputStream e = CodedOutputStream.newInstance(event);
        e.writeDouble(1, System.currentTimeMillis() / 1000.0);
        e.writeInt64(2, step);
        e.writeBytes(5, ByteString.copyFrom(summary.toByteArray()));
        e.flush();
        record(event.toByteArray());
    }

    /** One TFRecord, appended whole or not at all. */
    private void record(byte[] data) throws IOException {
        byte[] length = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(data.length).array();
        ByteBuffer r = ByteBuffer.allocate(length.length + data.length + 8);
        r.put(length).put(le(maskedCrc(length))).put(data).put(le(maskedCrc(data)));
        FileWrites.append(file, r.array());
    }

    /** TFRecord's CRC: CRC-32C, rotated right by 15 bits, plus a constant. */
    static int maskedCrc(byte[] data) {
        CRC32C crc = new CRC32C();
        crc.update(data);
        int c = (int) crc.getValue();
        return ((c >>> 15) | (c << 17)) + 0xa282ead8;
    }

    private static byte[] le(int v) {
        return ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array();
    }
}
