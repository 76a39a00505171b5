package relay.stages.io;

import com.google.gson.Gson;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import relay.stages.tensor.Bf16;
import relay.stages.tensor.DType;

/**
 * The safetensors format: an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
 * shape and byte range, then the raw little-endian data. Reading maps the file and checks every range
 * (inside the data, of the right length, not overlapping) before any tensor is used; float16 and bfloat16
 * are widened to float32 as they are read (exactly: every value of either is a float32). Writing stores float32 or
 * bfloat16; a bfloat16 value that was read, widened and written again as bfloat16 keeps its bits.
 */
public final class SafeTensors implements AutoCloseable {
    /** A header larger than this is not a header. */
    private static final long MAX_HEADER = 100L << 20;

    public record Entry(String name, String dtype, int[] shape, long begin, long end) {
        public long elements() {
            long n = 1;
            for (int d : shape) n *= d;
            return n;
        }
    }

    private final Path file;
    private final FileChannel channel;
    private final long dataStart;
    private final Map<String, Entry> entries;
    private final Map<String, String> metadata;

    private SafeTensors(Path file, FileChannel channel, long dataStart, Map<String, Entry> entries, Map<String, String> metadata) {
        this.file = file;
        this.channel = channel;
        this.dataStart = dataStart;
        this.entries = entries;
        this.metadata = metadata;
    }

    private static int dtypeSize(String dtype) {
        return switch (dtype) {
            case "F32" -> 4;
            case "F16", "BF16" -> 2;
            default -> -1;
        };
    }

    /** Opens and validates a file; every problem is reported with the file's path. */
    public static SafeTensors open(Path file) {
        FileChannel ch;
        try {
            ch = FileChannel.open(file, StandardOpenOption.READ);
        } catch (IOException e) {
            throw new ModelFileException(file, "cannot open: " + e.getMessage(), e);
        }
        try {
            long size = ch.size();
            if (size < 8) throw new ModelFileException(file, "truncated: " + size + " bytes, not even a header length");
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, len, 0);
            long headerLength = len.flip().getLong();
            if (headerLength < 2 || headerLength > MAX_HEADER || headerLength > size - 8) {
                throw new ModelFileException(file, "header length " + headerLength + " is impossible for a file of " + size + " bytes");
            }
            ByteBuffer hb = ByteBuffer.allocate((int) headerLength);
            readFully(ch, hb, 8);
            String json = new String(hb.array(), StandardCharsets.UTF_8);
            JsonObject header;
            try {
                JsonElement e = JsonParser.parseString(json);
                if (!e.isJsonObject()) throw new ModelFileException(file, "header is not a JSON object");
                header = e.getAsJsonObject();
            } catch (JsonParseException e) {
                throw new ModelFileException(file, "header is not valid JSON: " + e.getMessage(), e);
            }
            long dataStart = 8 + headerLength, dataSize = size - dataStart;
            Map<String, Entry> entries = new LinkedHashMap<>();
            Map<String, String> metadata = new LinkedHashMap<>();
            for (Map.Entry<String, JsonElement> kv : header.entrySet()) {
                if (kv.getKey().equals("__metadata__")) {
                    kv.getValue().getAsJsonObject().entrySet().forEach(m -> metadata.put(m.getKey(), m.getValue().getAsString()));
                    continue;
                }
                entries.put(kv.getKey(), entry(file, kv.getKey(), kv.getValue(), dataSize));
            }
            checkOverlaps(file, entries.values());
            return new SafeTensors(file, ch, dataStart, entries, metadata);
        } catch (IOException e) {
            closeQuietly(ch);
            throw new ModelFileException(file, "cannot read: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            closeQuietly(ch);
            throw e;
        }
    }

    private static Entry entry(Path file, String name, JsonElement value, long dataSize) {
        try {
            JsonObject o = value.getAsJsonObject();
            String dtype = o.get("dtype").getAsString();
            int size = dtypeSize(dtype);
            if (size < 0) throw new ModelFileException(file, "tensor '" + name + "' has dtype " + dtype + "; supported: F32, F16, BF16");
            int[] shape = new int[o.getAsJsonArray("shape").size()];
            for (int i = 0; i < shape.length; i++) {
                shape[i] = o.getAsJsonArray("shape").get(i).getAsInt();
                if (shape[i] < 0) throw new ModelFileException(file, "tensor '" + name + "' has a negative dimension");
            }
            long begin = o.getAsJsonArray("data_offsets").get(0).getAsLong(), end = o.getAsJsonArray("data_offsets").get(1).getAsLong();
            Entry e = new Entry(name, dtype, shape, begin, end);
            if (begin < 0 || end < begin || end > dataSize) {
                throw new ModelFileException(file, "tensor '" + name + "' spans bytes [" + begin + ", " + end
                        + ") but the data holds " + dataSize + " (truncated file or bad offsets)");
            }
            if (end - begin != e.elements() * size) {
                throw new ModelFileException(file, "tensor '" + name + "' of shape " + Arrays.toString(shape) + " in " + dtype
                        + " needs " + e.elements() * size + " bytes but spans " + (end - begin));
            }
            return e;
        } catch (ModelFileException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new ModelFileException(file, "tensor '" + name + "' has a malformed header entry: " + value, e);
        }
    }

    private static void checkOverlaps(Path file, java.util.Collection<Entry> entries) {
        List<Entry> sorted = new ArrayList<>(entries);
        sorted.sort(Comparator.comparingLong(Entry::begin));
        for (int i = 1; i < sorted.size(); i++) {
            Entry a = sorted.get(i - 1), b = sorted.get(i);
            if (b.begin() < a.end()) {
                throw new ModelFileException(file, "tensors '" + a.name() + "' and '" + b.name() + "' overlap");
            }
        }
    }

    private static void readFully(FileChannel ch, ByteBuffer b, long position) throws IOException {
        while (b.hasRemaining()) {
            if (ch.read(b, position + b.position()) < 0) throw new IOException("unexpected end of file");
        }
    }

    public Path file() {
        return file;
    }

    public Map<String, Entry> entries() {
        return entries;
    }

    public Map<String, String> metadata() {
        return metadata;
    }

    /** A tensor's values as float32, converting half precision; the file is mapped, not read whole. */
    public float[] read(String name) {
        Entry e = entries.get(name);
        if (e == null) throw new ModelFileException(file, "no tensor named '" + name + "'");
        float[] out = new float[Math.toIntExact(e.elements())];
        int width = (int) ((e.end() - e.begin()) / Math.max(1, out.length));
        try {
            // A chunk at a time: one mapping holds at most 2 GiB, and a 70B model's float32 token table is 4.2 GB.
            for (int from = 0; from < out.length; from += CHUNK) {
                int n = Math.min(CHUNK, out.length - from);
                ByteBuffer b = channel.map(FileChannel.MapMode.READ_ONLY, dataStart + e.begin() + (long) from * width, (long) n * width)
                        .order(ByteOrder.LITTLE_ENDIAN);
                switch (e.dtype()) {
                    case "F32" -> b.asFloatBuffer().get(out, from, n);
                    case "BF16" -> {
                        for (int i = 0; i < n; i++) out[from + i] = Float.intBitsToFloat((b.getShort(2 * i) & 0xFFFF) << 16);
                    }
                    default -> {
                        for (int i = 0; i < n; i++) out[from + i] = halfToFloat(b.getShort(2 * i));
                    }
                }
            }
        } catch (IOException ex) {
            throw new ModelFileException(file, "cannot read tensor '" + name + "': " + ex.getMessage(), ex);
        }
        return out;
    }

    /** float32 to bfloat16, rounding to nearest with ties to even; a NaN stays a (quiet) NaN. */
    static short toBfloat16(float v) {
        return Bf16.round(v);
    }

    /** IEEE 754 binary16 to float32, subnormals and infinities included. */
    static float halfToFloat(short h) {
        int sign = (h >>> 15) & 1, exp = (h >>> 10) & 0x1F, mant = h & 0x3FF;
        float v;
        if (exp == 0) {
            v = mant * 0x1p-24f;
        } else if (exp == 31) {
            v = mant == 0 ? Float.POSITIVE_INFINITY : Float.NaN;
        } else {
            v = Float.intBitsToFloat(((exp - 15 + 127) << 23) | (mant << 13));
        }
        return sign == 1 ? -v : v;
    }

    @Override
    public void close() {
        closeQuietly(channel);
    }

    private static void closeQuietly(FileChannel ch) {
        try {
            ch.close();
        } catch (IOException ignored) {
            // Nothing was written; a failing close of a read-only channel loses nothing.
        }
    }

    /**
     * Values a tensor is read or written in at a time (64 MiB of float32): a mapping or a heap buffer holds at most
     * 2 GiB, and writing through one buffer of this size keeps a checkpoint's heap small whatever its tensors' sizes.
     */
    static final int CHUNK = 1 << 24;

    /** A tensor to write: name, shape and float32 values. */
    public record Tensor32(String name, int[] shape, float[] values) {}

    /**
     * Writes float32 tensors in the given order with optional metadata, to a temporary file renamed into place
     * at the end, so a crash never leaves a half-written file under the final name. Returns the file's SHA-256.
     */
    public static String write(Path file, List<Tensor32> tensors, Map<String, String> metadata) throws IOException {
        return write(file, tensors, metadata, DType.F32);
    }

    /**
     * The same, stored as {@code dtype}: F32, or BF16 (each value rounded to the nearest bfloat16, ties to even,
     * as PyTorch's {@code .to(torch.bfloat16)} rounds).
     */
    public static String write(Path file, List<Tensor32> tensors, Map<String, String> metadata, DType dtype) throws IOException {
        int width = dtype.bytes();
        Map<String, Object> header = new LinkedHashMap<>();
        if (!metadata.isEmpty()) header.put("__metadata__", metadata);
        long offset = 0;
        for (Tensor32 t : tensors) {
            long bytes = (long) t.values().length * width;
            // An ordered entry: the same tensors give the same bytes in every JVM (Map.of's order changes from run to run).
            Map<String, Object> entry = new LinkedHashMap<>();
            entry.put("dtype", dtype.safetensors());
            entry.put("shape", t.shape());
            entry.put("data_offsets", new long[] {offset, offset + bytes});
            header.put(t.name(), entry);
            offset += bytes;
        }
        byte[] json = new Gson().toJson(header).getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8;
        byte[] head = Arrays.copyOf(json, padded);
        Arrays.fill(head, json.length, padded, (byte) ' ');
        // The digest is taken of the bytes as they go out: a checkpoint's manifest needs no second pass over the file.
        MessageDigest md = Sha256.digest();
        FileWrites.write(file, ch -> {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded).flip();
            md.update(len.duplicate());
            FileWrites.writeFully(ch, len);
            md.update(head);
            FileWrites.writeFully(ch, ByteBuffer.wrap(head));
            int largest = tensors.stream().mapToInt(t -> t.values().length).max().orElse(0);
            ByteBuffer b = ByteBuffer.allocate(Math.min(CHUNK, largest) * width).order(ByteOrder.LITTLE_ENDIAN);
            for (Tensor32 t : tensors) {
                float[] v = t.values();
                for (int from = 0; from < v.length; from += CHUNK) {
                    int n = Math.min(CHUNK, v.length - from);
                    b.clear();
                    if (width == 4) {
                        b.asFloatBuffer().put(v, from, n);
                        b.limit(n * 4);
                    } else {
                        for (int i = from; i < from + n; i++) b.putShort(toBfloat16(v[i]));
                        b.flip();
                    }
                    md.update(b.duplicate());
                    FileWrites.writeFully(ch, b);
                }
            }
        });
        return Sha256.hex(md);
    }
}
