package relay.stages.tensor;

import java.util.Locale;

/**
 * How a tensor's elements are stored. Kernels compute in float32 whatever the storage: a bfloat16 tensor is
 * widened where it is read and rounded (to nearest, ties to even) where it is written, except where an update
 * asks for stochastic rounding ({@link Bf16#stochastic}).
 */
public enum DType {
    F32(4, "F32", "float32"),
    BF16(2, "BF16", "bfloat16");

    private final int bytes;
    private final String safetensors;
    private final String torch;

    DType(int bytes, String safetensors, String torch) {
        this.bytes = bytes;
        this.safetensors = safetensors;
        this.torch = torch;
    }

    /** Bytes per element. */
    public int bytes() {
        return bytes;
    }

    /** The name a safetensors header gives it. */
    public String safetensors() {
        return safetensors;
    }

    /** The name config.json's {@code torch_dtype} gives it. */
    public String torch() {
        return torch;
    }

    /** The setting's spelling: f32 or bf16. */
    public String key() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** Parses a setting's value: f32 (or float32) and bf16 (or bfloat16); anything else is refused with the choices. */
    public static DType parse(String value) {
        String v = value.trim().toLowerCase(Locale.ROOT);
        for (DType t : values()) if (v.equals(t.key()) || v.equals(t.torch)) return t;
        if (v.equals("fp16") || v.equals("f16") || v.equals("float16")) {
            throw new IllegalArgumentException("dtype '" + value + "' is not supported (float16's range needs loss scaling); expected f32 or bf16, "
                    + "which has float32's range");
        }
        throw new IllegalArgumentException("unknown dtype '" + value + "'; expected f32 or bf16");
    }
}
