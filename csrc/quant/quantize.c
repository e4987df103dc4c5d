/*
 * quantize.c: tp_quantize_int8 / tp_quantize_int8_isa (argument checks, the layout, the
 * dispatch) and the drivers every compiled variant runs with its ISA's loops: per tensor, per
 * block and with caller-given scales (per channel: channels.c).
 *
 * Memory traffic is the cost, so each element is read once from DRAM where the layout allows:
 *  - per block, each block (32 elements for ggml's Q8_0) is reduced and quantized at once;
 *  - per tensor needs the global absmax before the first q, hence two passes;
 *  - caller-given scales are a plain stream;
 *  - large outputs are written with streaming stores (no read-for-ownership).
 * Threads take whole chunks / runs of blocks, and every result is independent of how work is
 * split (max / min reductions are exact), so results never depend on the thread count.
 */
#include "quant_internal.h"

#if TP_HAVE_X86_VARIANTS
#include <immintrin.h>
#endif

/* q through an L1 stage of this many bytes when the loop set streams only by copying */
#define QZ_STAGE 4096
/* Per block, work items are runs of this many blocks when every row splits evenly. */
#define QZ_BLOCK_RUN 2048

int qz_layout_init(qz_layout *L, int64_t outer, int64_t channels, int64_t inner, int64_t block) {
    TP_RETURN_IF(outer < 0 || channels < 0 || inner < 0 || block < 0, TP_ERR_ARGUMENT);
    L->block = block;
    L->nt = 0;
    L->es = 0;
    if (block) {
        /* blocks per row, rounded up without forming inner + block - 1, which overflows for a
         * block near INT64_MAX (legal: one block then covers each row) */
        TP_RETURN_IF(channels != inner / block + (inner % block != 0), TP_ERR_ARGUMENT);
        L->outer = outer;
        L->channels = channels;
        L->inner = inner;
        L->n = outer * inner;
        L->groups = outer * channels;
    } else if (channels == 1) { /* per tensor, also a channel axis of length 1 */
        L->outer = 1;
        L->channels = 1;
        L->inner = outer * inner;
        L->n = L->inner;
        L->groups = 1;
    } else {
        L->outer = outer;
        L->channels = channels;
        L->inner = inner;
        L->n = outer * channels * inner;
        L->groups = channels;
    }
    return TP_OK;
}

/* Streaming stores are weakly ordered: a work item that wrote q with them publishes it with one
 * fence at its end. A fence per segment would wait for the write-combining buffers to drain
 * every few KB, which cost a tenth of a per-channel quantize. */
void qz_publish(const qz_layout *L) {
#if TP_HAVE_X86_VARIANTS
    if (L->nt) _mm_sfence();
#else
    (void)L;
#endif
}

void qz_write(const qz_loops *o, const qz_layout *L, const void *x, int8_t *q, int64_t n,
              float inv, int32_t zp, const float *col_inv, const int32_t *col_zp, int32_t qmin) {
    int streams_directly = L->nt && (col_inv ? o->quant_cols_nt != NULL : o->quant_seg_nt != NULL);
    if (!L->nt || streams_directly) {
        if (col_inv) (streams_directly ? o->quant_cols_nt : o->quant_cols)(x, q, n, col_inv, col_zp, qmin, 0);
        else (streams_directly ? o->quant_seg_nt : o->quant_seg)(x, q, n, inv, zp, qmin, 0);
        return; /* the caller fences once per work item (qz_publish) */
    }
    int8_t stage[QZ_STAGE] __attribute__((aligned(32)));
    for (int64_t a = 0; a < n; a += QZ_STAGE) {
        int64_t len = n - a < QZ_STAGE ? n - a : QZ_STAGE;
        if (col_inv) o->quant_cols(AT(x, a, L->es), stage, len, col_inv + a, col_zp + a, qmin, 0);
        else o->quant_seg(AT(x, a, L->es), stage, len, inv, zp, qmin, 0);
        o->stream_copy(q + a, stage, len);
    }
}

/* Per tensor: one global stats pass, then one quantize pass. */
static int qz_tensor(const qz_loops *o, const qz_call *c, const qz_layout *L) {
    const void *x = c->x;
    const int64_t n = L->n, chunks = (n + QZ_CHUNK - 1) / QZ_CHUNK;
    const int affine = c->mode == TP_QUANT_AFFINE;
    int threads = tp_threads_for(n, QZ_MIN_PER_THREAD);
    (void)threads;
    qz_params p;
    if (affine) {
        int32_t lo = INT32_MAX, hi = INT32_MIN;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) reduction(min : lo) reduction(max : hi) if (threads > 1)
#endif
        for (int64_t k = 0; k < chunks; k++) {
            int64_t a = k * QZ_CHUNK, len = n - a < QZ_CHUNK ? n - a : QZ_CHUNK;
            int32_t l = INT32_MAX, h = INT32_MIN;
            o->stats_aff(AT(x, a, L->es), len, &l, &h);
            lo = l < lo ? l : lo;
            hi = h > hi ? h : hi;
        }
        if (qz_key_nonfinite(lo, hi)) return 1;
        p = qz_params_aff(lo, hi);
    } else {
        uint32_t m = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) reduction(max : m) if (threads > 1)
#endif
        for (int64_t k = 0; k < chunks; k++) {
            int64_t a = k * QZ_CHUNK, len = n - a < QZ_CHUNK ? n - a : QZ_CHUNK;
            uint32_t v = o->stats_sym(AT(x, a, L->es), len, 0);
            m = v > m ? v : m;
        }
        if (m >= 0x7f800000u) return 1;
        p = qz_params_sym(m);
    }
    c->scale[0] = p.scale;
    if (affine) c->zero_point[0] = (int8_t)p.zp;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
#endif
    for (int64_t k = 0; k < chunks; k++) {
        int64_t a = k * QZ_CHUNK, len = n - a < QZ_CHUNK ? n - a : QZ_CHUNK;
        qz_write(o, L, AT(x, a, L->es), c->q + a, len, p.inv, p.zp, NULL, NULL, p.qmin);
        qz_publish(L);
    }
    return 0;
}

/* Per block: each block reduced and quantized while it sits in L1. Work items are runs of
 * QZ_BLOCK_RUN blocks when every row splits evenly (the tensor is then one run of blocks), else
 * whole rows (their full blocks in one run, then the short one). */
static int qz_blocks(const qz_loops *o, const qz_call *c, const qz_layout *L) {
    const int64_t G = L->groups, B = L->block, I = L->inner, nb = L->channels, R = L->outer;
    const int affine = c->mode == TP_QUANT_AFFINE, uniform = I % B == 0;
    const int q8_0 = !affine && B == 32 && o->block32_sym; /* float32 / bfloat16: see the loop sets */
    const int64_t items = uniform ? (G + QZ_BLOCK_RUN - 1) / QZ_BLOCK_RUN : R;
    const void *x = c->x;
    float *scale = c->scale;
    int8_t *zp = affine ? c->zero_point : NULL, *q = c->q;
    int threads = tp_threads_for(L->n, QZ_MIN_PER_THREAD);
    int bad = 0;
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) reduction(| : bad) if (threads > 1)
#endif
    for (int64_t k = 0; k < items; k++) {
        if (uniform) {
            int64_t g0 = k * QZ_BLOCK_RUN, count = G - g0 < QZ_BLOCK_RUN ? G - g0 : QZ_BLOCK_RUN;
            if (q8_0) {
                int stream = L->nt && ((uintptr_t)q & 15) == 0;
                bad |= o->block32_sym(AT(x, g0 * 32, L->es), q + g0 * 32, count, scale + g0, stream);
                if (stream) qz_publish(L);
                continue;
            }
            bad |= o->block_run(AT(x, g0 * B, L->es), q + g0 * B, count, B, affine, scale + g0,
                                zp ? zp + g0 : NULL);
        } else {
            int64_t g0 = k * nb, start = k * I, last = (nb - 1) * B;
            bad |= o->block_run(AT(x, start, L->es), q + start, nb - 1, B, affine, scale + g0,
                                zp ? zp + g0 : NULL);
            bad |= o->block_run(AT(x, start + last, L->es), q + start + last, 1, I - last, affine,
                                scale + g0 + nb - 1, zp ? zp + g0 + nb - 1 : NULL);
        }
    }
    return bad;
}

/* Caller-given scales: one streaming pass that also looks for NaN / Inf. */
static int qz_given(const qz_loops *o, const qz_call *c, const qz_layout *L) {
    const int64_t n = L->n, chunks = (n + QZ_CHUNK - 1) / QZ_CHUNK, C = L->channels;
    const int per_channel = L->block == 0 && C > 1;
    const float *scale = c->scale;
    const int8_t *zp = c->zero_point;
    float *inv = (float *)(c->workspace + 2 * C);
    int32_t *zpi = c->workspace + 3 * C;
    if (per_channel)
        for (int64_t ch = 0; ch < C; ch++) {
            inv[ch] = 1.0f / scale[ch];
            zpi[ch] = zp ? zp[ch] : 0;
        }
    int threads = tp_threads_for(n, QZ_MIN_PER_THREAD);
    int bad = 0;
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) reduction(| : bad) if (threads > 1)
#endif
    for (int64_t k = 0; k < chunks; k++) {
        int64_t a = k * QZ_CHUNK, b = n - a < QZ_CHUNK ? n : a + QZ_CHUNK;
        while (a < b) {
            int64_t len;
            if (per_channel && L->inner == 1) {
                int64_t j = a % C;
                len = C - j < b - a ? C - j : b - a;
                bad |= o->quant_cols(AT(c->x, a, L->es), c->q + a, len, inv + j, zpi + j, -128, 1);
            } else {
                int64_t g, end = qz_segment(L, a, &g);
                len = (end < b ? end : b) - a;
                float gi = per_channel ? inv[g] : 1.0f / scale[g];
                int32_t gz = per_channel ? zpi[g] : (zp ? zp[g] : 0);
                bad |= o->quant_seg(AT(c->x, a, L->es), c->q + a, len, gi, gz, -128, 1);
            }
            a += len;
        }
    }
    return bad;
}

/* The driver of every compiled variant: `loops` is its ISA's loop sets, by input type. */
int quantize_int8_run(const qz_call *c, const qz_loops *loops) {
    const qz_loops *o = &loops[c->dtype];
    qz_layout L = c->L;
    L.nt = o->stream_copy != NULL && L.n >= QZ_NT_MIN_ELEMENTS;
    if (c->mode == TP_QUANT_GIVEN) return qz_given(o, c, &L);
    if (L.block) return qz_blocks(o, c, &L);
    if (L.channels == 1) return qz_tensor(o, c, &L);
    return qz_channels(o, &loops[TP_FLOAT32], c, &L);
}

/* Error path only: the lowest channel (block) index holding a value that is not finite in
 * float32. Plain and serial; it runs once, after a kernel has reported a bad value. */
static int64_t qz_first_bad_group(const void *x, int dtype, const qz_layout *L) {
    int64_t best = -1;
    for (int64_t i = 0; i < L->n; i++) {
        float v = qz_element(x, dtype, i);
        if (isfinite(v)) continue;
        int64_t g;
        qz_segment(L, i, &g);
        if (best < 0 || g < best) best = g;
        if (L->block || L->channels == 1) break; /* memory order is group order here */
    }
    return best;
}

int tp_quantize_int8_isa(const void *x, int32_t dtype, int64_t outer, int64_t channels,
                         int64_t inner, int64_t block, int32_t mode, float *scale,
                         int8_t *zero_point, int8_t *q, int32_t *workspace,
                         int64_t workspace_len, int64_t *bad, int isa) {
    TP_RETURN_IF(bad == NULL, TP_ERR_ARGUMENT);
    *bad = -1;
    TP_RETURN_IF(isa < 0 || isa >= TP_ISA_COUNT || !tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    TP_RETURN_IF(dtype != TP_FLOAT32 && dtype != TP_FLOAT64 && dtype != TP_FLOAT16 &&
                     dtype != TP_BFLOAT16,
                 TP_ERR_ARGUMENT);
    TP_RETURN_IF(mode != TP_QUANT_SYMMETRIC && mode != TP_QUANT_AFFINE && mode != TP_QUANT_GIVEN,
                 TP_ERR_ARGUMENT);
    qz_call c = {x, dtype, mode, {0}, scale, zero_point, q, workspace, workspace_len};
    qz_layout *L = &c.L;
    int status = qz_layout_init(L, outer, channels, inner, block);
    TP_RETURN_IF(status != TP_OK, status);
    L->es = qz_element_size(dtype);
    const int affine = mode == TP_QUANT_AFFINE;
    TP_RETURN_IF(L->groups > 0 && scale == NULL, TP_ERR_ARGUMENT);
    TP_RETURN_IF(L->groups > 0 && affine && zero_point == NULL, TP_ERR_ARGUMENT);
    if (mode == TP_QUANT_GIVEN)
        for (int64_t g = 0; g < L->groups; g++) /* the reciprocal must be finite */
            TP_RETURN_IF(!(scale[g] >= QZ_MIN_SCALE && scale[g] <= FLT_MAX), TP_ERR_ARGUMENT);
    if (L->n == 0) { /* empty groups are all-zero groups */
        if (mode != TP_QUANT_GIVEN)
            for (int64_t g = 0; g < L->groups; g++) {
                qz_params p = affine ? qz_params_aff(INT32_MAX, INT32_MIN) : qz_params_sym(0);
                scale[g] = p.scale;
                if (affine) zero_point[g] = (int8_t)p.zp;
            }
        return TP_OK;
    }
    TP_RETURN_IF(x == NULL || q == NULL, TP_ERR_ARGUMENT);
    const int64_t needed = tp_quantize_int8_workspace(dtype, outer, channels, inner, block, mode, 1);
    TP_RETURN_IF(needed > 0 && (workspace == NULL || workspace_len < needed), TP_ERR_ARGUMENT);
    if (quantize_int8_variant(isa)(&c)) {
        *bad = qz_first_bad_group(x, dtype, L);
        return TP_ERR_NONFINITE;
    }
    return TP_OK;
}

int tp_quantize_int8(const void *x, int32_t dtype, int64_t outer, int64_t channels, int64_t inner,
                     int64_t block, int32_t mode, float *scale, int8_t *zero_point, int8_t *q,
                     int32_t *workspace, int64_t workspace_len, int64_t *bad) {
    return tp_quantize_int8_isa(x, dtype, outer, channels, inner, block, mode, scale, zero_point,
                                q, workspace, workspace_len, bad, tp_isa_current());
}
