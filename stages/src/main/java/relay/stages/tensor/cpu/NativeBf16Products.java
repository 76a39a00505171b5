package relay.stages.tensor.cpu;

import static org.bytedeco.dnnl.global.dnnl.*;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.bytedeco.dnnl.dnnl_engine;
import org.bytedeco.dnnl.dnnl_exec_arg_t;
import org.bytedeco.dnnl.dnnl_memory;
import org.bytedeco.dnnl.dnnl_memory_desc;
import org.bytedeco.dnnl.dnnl_post_ops;
import org.bytedeco.dnnl.dnnl_primitive;
import org.bytedeco.dnnl.dnnl_primitive_attr;
import org.bytedeco.dnnl.dnnl_primitive_desc;
import org.bytedeco.dnnl.dnnl_stream;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.Pointer;

/**
 * Matrix products of two bfloat16 operands through oneDNN's matmul, accumulating in float32 and writing a float32 or
 * bfloat16 result (rounded once, to nearest even). Used only where the CPU multiplies bfloat16 itself (AVX512-BF16 or
 * AMX): there one thread ran GPT-2's products 3.8–4.2× as fast as OpenBLAS's sgemm (2026-12-05, the 2-core AMD EPYC),
 * where widening the operands to float32 first costs time on top of sgemm's. Each call runs on the calling thread
 * alone (OMP_NUM_THREADS=1): the device cuts a product into tiles by shape and shares them over its own threads, as
 * it does with OpenBLAS, so a result does not depend on the thread count. A product's temporary memory comes from the
 * device (workspace, counted); its compiled kernel is kept per shape.
 */
final class NativeBf16Products {
    /** Why products widen to float32 instead; null where this path runs. */
    private static final String UNAVAILABLE = unavailableReason();

    private static dnnl_engine engine;
    private static final ThreadLocal<dnnl_stream> STREAM = ThreadLocal.withInitial(() -> {
        dnnl_stream s = new dnnl_stream();
        check(dnnl_stream_create(s, engine, dnnl_stream_default_flags), "a stream");
        return s;
    });
    private static final Map<Shape, Product> PRODUCTS = new ConcurrentHashMap<>();

    private NativeBf16Products() {}

    /** True where bfloat16 products run natively here. */
    static boolean available() {
        return UNAVAILABLE == null;
    }

    /** What a bfloat16 product runs as on this machine, and why. */
    static String describe() {
        return available()
                ? "oneDNN bfloat16 matmul, float32 accumulation (the CPU multiplies bfloat16 natively)"
                : "sgemm on operands widened to float32 in panels (" + UNAVAILABLE + ")";
    }

    private static String unavailableReason() {
        if (!"1".equals(System.getenv("OMP_NUM_THREADS"))) {
            return "OMP_NUM_THREADS is not 1, as deploy/bin/relay sets it; oneDNN would start a team of threads per product";
        }
        try {
            Loader.load(org.bytedeco.dnnl.global.dnnl.class);
            if ((dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core_bf16) != dnnl_cpu_isa_avx512_core_bf16) {
                return "this CPU has no bfloat16 multiply (AVX512-BF16 or AMX)";
            }
            dnnl_engine e = new dnnl_engine();
            check(dnnl_engine_create(e, dnnl_cpu, 0), "the CPU engine");
            engine = e;
            return null;
        } catch (RuntimeException | LinkageError e) {
            return "oneDNN did not load: " + e.getMessage();
        }
    }

    /** One product's layout: what a compiled kernel is kept for. */
    record Shape(boolean transA, boolean transB, int m, int n, int k, int lda, int ldb, int ldc, float alpha, float beta,
                 boolean bf16Out) {}

    /**
     * A compiled kernel for one shape, the descriptions memory is made from, and the temporary bytes it needs
     * ({@code scratchBytes}).
     */
    record Product(Shape shape, dnnl_primitive primitive, dnnl_memory_desc a, dnnl_memory_desc b, dnnl_memory_desc c,
                   dnnl_memory_desc scratch, long scratchBytes) {
        /**
         * C = alpha·op(A)·op(B) + beta·C on the calling thread; a, b and c point at element (0, 0) of each matrix as
         * stored (A and B bfloat16, C as the shape says), scratch at {@code scratchBytes} bytes or null where that is 0.
         */
        void multiply(Pointer atA, Pointer atB, Pointer atC, Pointer atScratch) {
            dnnl_memory ma = memory(a, atA), mb = memory(b, atB), mc = memory(c, atC);
            dnnl_memory ms = scratchBytes > 0 ? memory(scratch, atScratch) : null;
            try (dnnl_exec_arg_t args = new dnnl_exec_arg_t(4)) {
                args.position(0).arg(DNNL_ARG_SRC).memory(ma);
                args.position(1).arg(DNNL_ARG_WEIGHTS).memory(mb);
                args.position(2).arg(DNNL_ARG_DST).memory(mc);
                if (ms != null) args.position(3).arg(DNNL_ARG_SCRATCHPAD).memory(ms);
                dnnl_stream stream = STREAM.get();
                check(dnnl_primitive_execute(primitive, stream, ms != null ? 4 : 3, args.position(0)), "a product " + shape);
                check(dnnl_stream_wait(stream), "a product " + shape);
            } finally {
                dnnl_memory_destroy(ma);
                dnnl_memory_destroy(mb);
                dnnl_memory_destroy(mc);
                if (ms != null) dnnl_memory_destroy(ms);
            }
        }
    }

    /** The compiled product for a shape: compiled at its first use, kept for the next. */
    static Product product(Shape s) {
        if (!available()) throw new IllegalStateException("no native bfloat16 products here: " + UNAVAILABLE);
        return PRODUCTS.computeIfAbsent(s, NativeBf16Products::compile);
    }

    private static Product compile(Shape s) {
        dnnl_memory_desc a = desc(s.m, s.k, dnnl_bf16, s.transA, s.lda);
        dnnl_memory_desc b = desc(s.k, s.n, dnnl_bf16, s.transB, s.ldb);
        dnnl_memory_desc c = desc(s.m, s.n, s.bf16Out ? dnnl_bf16 : dnnl_f32, false, s.ldc);
        dnnl_primitive_attr attr = new dnnl_primitive_attr();
        dnnl_post_ops ops = new dnnl_post_ops();
        dnnl_primitive_desc pd = new dnnl_primitive_desc();
        try {
            check(dnnl_primitive_attr_create(attr), "an attribute");
            check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "user scratchpad");
            check(dnnl_post_ops_create(ops), "post-ops");
            if (s.alpha != 1f) check(dnnl_post_ops_append_eltwise(ops, dnnl_eltwise_linear, s.alpha, 0f), "alpha");
            if (s.beta != 0f) check(dnnl_post_ops_append_sum(ops, s.beta, 0, dnnl_data_type_undef), "beta");
            check(dnnl_primitive_attr_set_post_ops(attr, ops), "post-ops");
            check(dnnl_matmul_primitive_desc_create(pd, engine, a, b, null, c, attr), "a matmul for " + s);
            dnnl_primitive prim = new dnnl_primitive();
            check(dnnl_primitive_create(prim, pd), "a matmul for " + s);
            dnnl_memory_desc scratch = new dnnl_memory_desc();
            check(dnnl_memory_desc_clone(scratch, dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0)), "scratchpad");
            return new Product(s, prim, a, b, c, scratch, dnnl_memory_desc_get_size(scratch));
        } finally {
            dnnl_primitive_desc_destroy(pd);
            dnnl_post_ops_destroy(ops);
            dnnl_primitive_attr_destroy(attr);
        }
    }

    /** A rows × cols matrix stored row-major with leading dimension ld, or (trans) its transpose stored so. */
    private static dnnl_memory_desc desc(int rows, int cols, int type, boolean trans, int ld) {
        dnnl_memory_desc d = new dnnl_memory_desc();
        long[] strides = trans ? new long[] {1, ld} : new long[] {ld, 1};
        check(dnnl_memory_desc_create_with_strides(d, 2, new long[] {rows, cols}, type, strides), "a memory description");
        return d;
    }

    private static dnnl_memory memory(dnnl_memory_desc d, Pointer at) {
        dnnl_memory m = new dnnl_memory();
        check(dnnl_memory_create(m, d, engine, at), "memory");
        return m;
    }

    private static void check(int status, String what) {
        if (status != dnnl_success) throw new IllegalStateException("oneDNN could not make or run " + what + ": status " + status);
    }
}
