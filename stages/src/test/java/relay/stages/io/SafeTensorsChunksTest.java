package relay.stages.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import relay.stages.tensor.DType;

/**
 * Tensors are written and read a chunk at a time (a mapping or heap buffer holds at most 2 GiB; a 70B model's float32
 * token table is 4.2 GB): one a few values past a chunk, between two small ones, comes back value for value, in
 * float32 and in bfloat16, and the digest taken as the chunks went out is the file's.
 */
class SafeTensorsChunksTest {
    @TempDir
    Path dir;

    @Test
    void aTensorLongerThanAChunkRoundTrips() throws IOException {
        SplittableRandom rng = new SplittableRandom(5);
        float[] large = new float[SafeTensors.CHUNK + 3];
        for (int i = 0; i < large.length; i++) large[i] = (float) rng.nextGaussian();
        float[] before = {1f, -2f, 3.5f}, after = {0.25f, 7f};
        List<SafeTensors.Tensor32> tensors = List.of(new SafeTensors.Tensor32("before", new int[] {3}, before),
                new SafeTensors.Tensor32("large", new int[] {large.length}, large), new SafeTensors.Tensor32("after", new int[] {2}, after));
        for (DType dtype : List.of(DType.F32, DType.BF16)) {
            Path file = dir.resolve(dtype.key() + ".safetensors");
            String digest = SafeTensors.write(file, tensors, Map.of(), dtype);
            assertEquals(Sha256.of(file), digest, dtype + ": the digest of the chunks is the file's");
            try (SafeTensors st = SafeTensors.open(file)) {
                assertArrayEquals(before, st.read("before"), dtype.key());
                assertArrayEquals(after, st.read("after"), dtype.key());
                float[] back = st.read("large");
                for (int i = 0; i < large.length; i++) {
                    float want = dtype == DType.F32 ? large[i] : Float.intBitsToFloat(SafeTensors.toBfloat16(large[i]) << 16);
                    if (Float.floatToIntBits(want) != Float.floatToIntBits(back[i])) {
                        assertEquals(want, back[i], dtype.key() + ": value " + i);
                    }
                }
            }
        }
    }
}
