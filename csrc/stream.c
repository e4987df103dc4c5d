/* stream.c: a plain streaming kernel that measures the memory bandwidth a kernel can reach. */
#include "common.h"

#define STREAM_MAX 4

/* One loop that reads every input and writes every output at the same index, as the kernels
 * it bounds do (several concurrent streams). n_in and n_out are constants in each wrapper
 * below, so the inner loops unroll; ivdep tells the compiler the streams do not overlap (too many pairs for
 * its run-time alias checks), so the loop over i vectorizes instead of running scalar. */
#if defined(__GNUC__) && !defined(__clang__)
#define TP_IVDEP _Pragma("GCC ivdep")
#elif defined(__clang__)
#define TP_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#else
#define TP_IVDEP
#endif
TP_ALWAYS_INLINE void stream_body(const float *const *in, float *const *out, int64_t lo,
                                  int64_t hi, const int n_in, const int n_out) {
    TP_IVDEP
    for (int64_t i = lo; i < hi; i++) {
        float s = 0.0f;
        for (int k = 0; k < n_in; k++) s += in[k][i];
        for (int k = 0; k < n_out; k++) out[k][i] = s + (float)k;
    }
}

/* The probe must be as fast as the fastest kernel could be: compiled for the baseline only
 * (16-byte SSE2 accesses), it read and wrote 13 GB/s on one Zen 4 core where the same loop with
 * 64-byte AVX-512 accesses moved 34 GB/s, and the mixed Adam step "reached" 173% of it. So the
 * body is compiled once per ISA (the target attribute lets GCC vectorize it at that width) and
 * the probe runs the machine's best (tp_isa_current), as the kernels do. */
typedef const float *const *stream_in;
typedef float *const *stream_out;
typedef void (*stream_fn)(stream_in, stream_out, int64_t, int64_t);

/* stream_ISA_NI_NO: the body with NI inputs and NO outputs; STREAM_TABLE(ISA, TARGET) stamps
 * the 13 wrappers of one ISA and its table (row n_in - 1, column n_out; NULL: no such probe). */
#define STREAM_FN(ISA, TARGET, NI, NO)                                                      \
    TARGET static void stream_##ISA##_##NI##_##NO(stream_in in, stream_out out, int64_t lo, \
                                                  int64_t hi) {                             \
        stream_body(in, out, lo, hi, NI, NO);                                               \
    }
#define STREAM_TABLE(ISA, TARGET)                                                              \
    STREAM_FN(ISA, TARGET, 1, 0) STREAM_FN(ISA, TARGET, 1, 1) STREAM_FN(ISA, TARGET, 1, 2)     \
    STREAM_FN(ISA, TARGET, 1, 3) STREAM_FN(ISA, TARGET, 2, 1) STREAM_FN(ISA, TARGET, 2, 2)     \
    STREAM_FN(ISA, TARGET, 2, 3) STREAM_FN(ISA, TARGET, 3, 1) STREAM_FN(ISA, TARGET, 3, 2)     \
    STREAM_FN(ISA, TARGET, 3, 3) STREAM_FN(ISA, TARGET, 4, 1) STREAM_FN(ISA, TARGET, 4, 2)     \
    STREAM_FN(ISA, TARGET, 4, 3)                                                               \
    static const stream_fn STREAM_##ISA[4][4] = {                                              \
        {stream_##ISA##_1_0, stream_##ISA##_1_1, stream_##ISA##_1_2, stream_##ISA##_1_3},      \
        {NULL, stream_##ISA##_2_1, stream_##ISA##_2_2, stream_##ISA##_2_3},                    \
        {NULL, stream_##ISA##_3_1, stream_##ISA##_3_2, stream_##ISA##_3_3},                    \
        {NULL, stream_##ISA##_4_1, stream_##ISA##_4_2, stream_##ISA##_4_3},                    \
    };

#define STREAM_NO_TARGET /* the baseline: the file's own flags */
STREAM_TABLE(baseline, STREAM_NO_TARGET)
#if TP_HAVE_X86_VARIANTS
STREAM_TABLE(avx2, TP_TARGET_AVX2)
STREAM_TABLE(avx512, TP_TARGET_AVX512)
#endif

static stream_fn pick(int n_in, int n_out, int isa) {
#if TP_HAVE_X86_VARIANTS
    if (isa == TP_ISA_AVX512) return STREAM_avx512[n_in - 1][n_out];
    if (isa == TP_ISA_AVX2) return STREAM_avx2[n_in - 1][n_out];
#endif
    (void)isa;
    return STREAM_baseline[n_in - 1][n_out];
}

int tp_stream_probe(const float *const *inputs, int32_t n_in, float *const *outputs,
                    int32_t n_out, int64_t n) {
    TP_RETURN_IF(n_in < 1 || n_in > STREAM_MAX || n_out < 0 || n_out > 3 || n < 0, TP_ERR_ARGUMENT);
    TP_RETURN_IF(n > 0 && (!inputs || (n_out > 0 && !outputs)), TP_ERR_ARGUMENT);
    stream_fn fn = pick(n_in, n_out, tp_isa_current());
    TP_RETURN_IF(fn == NULL, TP_ERR_ARGUMENT);
    int threads = tp_threads_for(n, 32768);
    if (threads <= 1) {
        fn(inputs, outputs, 0, n);
        return TP_OK;
    }
#ifdef _OPENMP
    /* Each thread streams one contiguous half (or share), as the kernels it bounds do. */
#pragma omp parallel num_threads(threads)
    {
        int64_t nt = tp_team_size(), id = tp_team_id();
        int64_t lo = (n * id / nt) & ~(int64_t)15, hi = id == nt - 1 ? n : (n * (id + 1) / nt) & ~(int64_t)15;
        fn(inputs, outputs, lo, hi);
    }
#endif
    return TP_OK;
}
