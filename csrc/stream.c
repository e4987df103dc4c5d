/* stream.c: a plain streaming kernel that measures the memory bandwidth a kernel can reach. */
#include "common.h"

#define STREAM_MAX 8
#define STREAM_BLOCK 2048 /* elements per block: the partial sums stay in L1 */

int tp_stream_probe(const float *const *inputs, int32_t n_in, float *const *outputs,
                    int32_t n_out, int64_t n) {
    TP_RETURN_IF(n_in < 1 || n_in > STREAM_MAX || n_out < 1 || n_out > STREAM_MAX || n < 0,
                 TP_ERR_ARGUMENT);
    TP_RETURN_IF(n > 0 && (!inputs || !outputs), TP_ERR_ARGUMENT);
    int threads = tp_threads_for(n, 32768);
    (void)threads;
    int64_t blocks = (n + STREAM_BLOCK - 1) / STREAM_BLOCK;
    /* Static schedule: each thread streams one contiguous part, as the kernels it bounds do.
     * Summing block-wise through an L1 buffer keeps every loop a simple vectorizable stream. */
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
#endif
    for (int64_t b = 0; b < blocks; b++) {
        float sum[STREAM_BLOCK];
        int64_t lo = b * STREAM_BLOCK, len = n - lo < STREAM_BLOCK ? n - lo : STREAM_BLOCK;
        const float *first = inputs[0] + lo;
        for (int64_t i = 0; i < len; i++) sum[i] = first[i];
        for (int32_t k = 1; k < n_in; k++) {
            const float *in = inputs[k] + lo;
            for (int64_t i = 0; i < len; i++) sum[i] += in[i];
        }
        for (int32_t k = 0; k < n_out; k++) {
            float *out = outputs[k] + lo;
            for (int64_t i = 0; i < len; i++) out[i] = sum[i] + (float)k;
        }
    }
    return TP_OK;
}
