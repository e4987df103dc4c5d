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

/* stream_NI_NO: the body with NI inputs and NO outputs (one thin wrapper a line). */
typedef const float *const *stream_in;
typedef float *const *stream_out;
static void stream_1_0(stream_in in, stream_out out, int64_t lo, int64_t hi) { stream_body(in, out, lo, hi, 1, 0); }
static void stream_1_1(stream_in in, stream_out out, int64_t lo, int64_t hi) { stream_body(in, out, lo, hi, 1, 1); }
static void stream_2_1(stream_in in, stream_out out, int64_t lo, int64_t hi) { stream_body(in, out, lo, hi, 2, 1); }
static void stream_3_1(stream_in in, stream_out out, int64_t lo, int64_t hi) { stream_body(in, out, lo, hi, 3, 1); }
static void stream_4_1(stream_in in, stream_out out, int64_t lo, int64_t hi) { stream_body(in, out, lo, hi, 4, 1); }
static void stream_1_2(stream_in in, stream_out out, int64_t lo, int64_t hi) { stream_body(in, out, lo, hi, 1, 2); }
static void stream_2_2(stream_in in, stream_out out, int64_t lo, int64_t hi) { stream_body(in, out, lo, hi, 2, 2); }
static void stream_3_2(stream_in in, stream_out out, int64_t lo, int64_t hi) { stream_body(in, out, lo, hi, 3, 2); }
static void stream_4_2(stream_in in, stream_out out, int64_t lo, int64_t hi) { stream_body(in, out, lo, hi, 4, 2); }
static void stream_1_3(stream_in in, stream_out out, int64_t lo, int64_t hi) { stream_body(in, out, lo, hi, 1, 3); }
static void stream_2_3(stream_in in, stream_out out, int64_t lo, int64_t hi) { stream_body(in, out, lo, hi, 2, 3); }
static void stream_3_3(stream_in in, stream_out out, int64_t lo, int64_t hi) { stream_body(in, out, lo, hi, 3, 3); }
static void stream_4_3(stream_in in, stream_out out, int64_t lo, int64_t hi) { stream_body(in, out, lo, hi, 4, 3); }

typedef void (*stream_fn)(stream_in, stream_out, int64_t, int64_t);

static stream_fn pick(int n_in, int n_out) {
    static const stream_fn table[4][4] = {
        {stream_1_0, stream_1_1, stream_1_2, stream_1_3},
        {NULL, stream_2_1, stream_2_2, stream_2_3},
        {NULL, stream_3_1, stream_3_2, stream_3_3},
        {NULL, stream_4_1, stream_4_2, stream_4_3},
    };
    return table[n_in - 1][n_out];
}

int tp_stream_probe(const float *const *inputs, int32_t n_in, float *const *outputs,
                    int32_t n_out, int64_t n) {
    TP_RETURN_IF(n_in < 1 || n_in > STREAM_MAX || n_out < 0 || n_out > 3 || n < 0, TP_ERR_ARGUMENT);
    TP_RETURN_IF(n > 0 && (!inputs || (n_out > 0 && !outputs)), TP_ERR_ARGUMENT);
    stream_fn fn = pick(n_in, n_out);
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
