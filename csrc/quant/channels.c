/*
 * channels.c: quantize with one scale per channel, along any axis (the variants' driver;
 * quantize.c dispatches here), and the workspace it needs.
 *
 * Memory traffic is the cost: the channels are cut into tiles of about QZ_TILE_BYTES; a tile's
 * stats pass pulls it into cache and its quantize pass re-reads it from there (axis 0). When the
 * channel axis is not outermost, short strided runs are copied into a per-thread float32 tile
 * (few rows) or handled in two sequential passes over the rows (many rows); see qz_make_plan.
 * Threads take whole tiles or row ranges; max / min reductions are exact, so results never
 * depend on the thread count.
 */
#include "quant_internal.h"

/* Per-channel work plan. x is [R][C][I], seen as R rows of K = C*I columns.
 *  - tile: channels are cut into tiles of whole channels of about QZ_TILE_BYTES, stats then
 *    quantize per tile while it is in cache. Right when a channel's runs are long (axis 0).
 *  - copy: when the channel axis is not outermost (R > 1) and runs are short, a tile's rows sit
 *    a whole row stride apart; with the power-of-two strides of real weights they map to a few
 *    cache sets and evict each other. With few rows (R <= QZ_COPY_TILE_BYTES / 1 KiB, so each
 *    row of a tile still spans >= 1 KiB and TLB misses amortise) the tile is first copied as
 *    float32 into a contiguous per-thread buffer: x is read from DRAM once.
 *  - rows: with many rows, strided tiles drown in TLB misses, so two sequential passes: column
 *    stats into per-thread accumulators over each thread's rows, then quantize; the quantize pass
 *    walks each thread's rows backwards so the rows the stats pass read last are still cached. */
#define QZ_COPY_TILE_BYTES (256 * 1024)
#define QZ_COPY_MIN_ROW_BYTES 1024
#define QZ_SHORT_RUN_BYTES 1024 /* runs at least this long stream well read in place */
#define QZ_ROWS_MAX_COLUMNS (1 << 20)
/* Bytes of x the rows plan counts on finding in cache after its stats pass (of an 8 MiB L3
 * and the L2s; a smaller guess only costs a few rows read twice). */
#define QZ_ROWS_CACHED_BYTES ((int64_t)4 << 20)

enum { QZ_PLAN_TILE, QZ_PLAN_COPY, QZ_PLAN_ROWS };

typedef struct {
    int kind;
    int64_t tile;         /* channels per tile (tile, copy) */
    int64_t thread_words; /* int32 words of one thread's buffer or accumulators */
    int64_t shared_words; /* int32 words after the 4*C block shared by all threads */
} qz_plan;

static qz_plan qz_make_plan(const qz_layout *L, int32_t mode) {
    qz_plan p = {QZ_PLAN_TILE, 1, 0, 0};
    const int64_t R = L->outer, I = L->inner, C = L->channels, K = C * I;
    if (mode == TP_QUANT_GIVEN || L->block || C <= 1 || L->n == 0) return p;
    if (R > 1 && I * L->es < QZ_SHORT_RUN_BYTES) {
        if (R * QZ_COPY_MIN_ROW_BYTES <= QZ_COPY_TILE_BYTES) {
            p.kind = QZ_PLAN_COPY;
            p.tile = QZ_COPY_TILE_BYTES / (R * I * 4);
            if (p.tile < 1) p.tile = 1;
            if (p.tile > C) p.tile = C;
            p.thread_words = p.tile * R * I;
            return p;
        }
        if (K <= QZ_ROWS_MAX_COLUMNS) {
            p.kind = QZ_PLAN_ROWS;
            p.thread_words = 2 * K;               /* column stats (min and max keys) */
            p.shared_words = I > 1 ? 2 * K : 0;   /* inv and zero point spread per column */
            return p;
        }
    }
    int64_t chan_bytes = R * I * L->es;
    p.tile = chan_bytes > 0 ? QZ_TILE_BYTES / chan_bytes : C;
    if (p.tile < 1) p.tile = 1;
    return p;
}

static void qz_tile_init(const qz_layout *L, int64_t c0, int64_t c1, int affine, int32_t *ws) {
    const int64_t C = L->channels;
    for (int64_t c = c0; c < c1; c++) {
        if (affine) {
            ws[c] = INT32_MAX;
            ws[C + c] = INT32_MIN;
        } else {
            ws[c] = 0;
        }
    }
}

/* Scales of channels [c0, c1) from their stats; 1 when one holds a NaN / Inf. */
static int qz_tile_params(const qz_layout *L, int64_t c0, int64_t c1, int affine, float *scale,
                          int8_t *zp, int32_t *ws) {
    const int64_t C = L->channels;
    uint32_t *absmax = (uint32_t *)ws;
    int32_t *mn = ws, *mx = ws + C, *zpi = ws + 3 * C;
    float *inv = (float *)(ws + 2 * C);
    for (int64_t c = c0; c < c1; c++) {
        if (affine ? qz_key_nonfinite(mn[c], mx[c]) : absmax[c] >= 0x7f800000u) return 1;
        qz_params p = affine ? qz_params_aff(mn[c], mx[c]) : qz_params_sym(absmax[c]);
        scale[c] = p.scale;
        if (affine) zp[c] = (int8_t)p.zp;
        inv[c] = p.inv;
        zpi[c] = p.zp;
    }
    return 0;
}

/* Channels [c0, c1) of a [R][C][I] tensor, stats then quantize, reading x in place. ws: 4*C
 * words (stats a, stats b, inv, zero point). Returns 1 when the tile holds a NaN / Inf. */
static int qz_tile(const qz_loops *o, const void *x, const qz_layout *L, int64_t c0, int64_t c1,
                   int affine, float *scale, int8_t *zp, int8_t *q, int32_t *ws) {
    const int64_t R = L->outer, C = L->channels, I = L->inner, W = c1 - c0;
    const int es = L->es;
    uint32_t *absmax = (uint32_t *)ws;
    int32_t *mn = ws, *mx = ws + C, *zpi = ws + 3 * C;
    float *inv = (float *)(ws + 2 * C);
    qz_tile_init(L, c0, c1, affine, ws);
    if (I == 1) {
        for (int64_t r = 0; r < R; r++) {
            const void *row = AT(x, r * C + c0, es);
            if (affine) o->cols_aff(row, W, mn + c0, mx + c0);
            else o->cols_sym(row, W, absmax + c0);
        }
    } else {
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = c0; c < c1; c++) {
                const void *seg = AT(x, (r * C + c) * I, es);
                if (affine) o->stats_aff(seg, I, &mn[c], &mx[c]);
                else absmax[c] = o->stats_sym(seg, I, absmax[c]);
            }
    }
    if (qz_tile_params(L, c0, c1, affine, scale, zp, ws)) return 1;
    int32_t qmin = affine ? -128 : -127;
    if (I == 1) {
        for (int64_t r = 0; r < R; r++)
            o->quant_cols(AT(x, r * C + c0, es), q + r * C + c0, W, inv + c0, zpi + c0, qmin, 0);
    } else {
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = c0; c < c1; c++)
                qz_write(o, L, AT(x, (r * C + c) * I, es), q + (r * C + c) * I, I, inv[c],
                         zpi[c], NULL, NULL, qmin);
    }
    qz_publish(L);
    return 0;
}

/* The same through a contiguous float32 copy of the tile (o32: the float32 loops). */
static int qz_tile_copy(const qz_loops *o, const qz_loops *o32, const void *x, const qz_layout *L,
                        int64_t c0, int64_t c1, int affine, float *scale, int8_t *zp, int8_t *q,
                        int32_t *ws, float *buf) {
    const int64_t R = L->outer, C = L->channels, I = L->inner, W = (c1 - c0) * I;
    const int es = L->es;
    uint32_t *absmax = (uint32_t *)ws;
    int32_t *mn = ws, *mx = ws + C, *zpi = ws + 3 * C;
    float *inv = (float *)(ws + 2 * C);
    qz_tile_init(L, c0, c1, affine, ws);
    for (int64_t r = 0; r < R; r++) {
        const void *src = AT(x, (r * C + c0) * I, es);
        float *dst = buf + r * W;
        if (I == 1) {
            if (affine) o->copy_cols_aff(src, dst, W, mn + c0, mx + c0);
            else o->copy_cols_sym(src, dst, W, absmax + c0);
        } else {
            o->copy(src, dst, W);
            for (int64_t c = c0; c < c1; c++) {
                const float *seg = dst + (c - c0) * I;
                if (affine) o32->stats_aff(seg, I, &mn[c], &mx[c]);
                else absmax[c] = o32->stats_sym(seg, I, absmax[c]);
            }
        }
    }
    if (qz_tile_params(L, c0, c1, affine, scale, zp, ws)) return 1;
    int32_t qmin = affine ? -128 : -127;
    for (int64_t r = 0; r < R; r++) {
        const float *row = buf + r * W;
        if (I == 1) {
            o32->quant_cols(row, q + r * C + c0, W, inv + c0, zpi + c0, qmin, 0);
        } else {
            for (int64_t c = c0; c < c1; c++)
                o32->quant_seg(row + (c - c0) * I, q + (r * C + c) * I, I, inv[c], zpi[c], qmin, 0);
        }
    }
    return 0;
}

/* The rows plan (see qz_make_plan). ws: 4*C words, then the per-column inv / zero point (I > 1),
 * then one block of 2*K accumulator words per thread. */
static int qz_rows(const qz_loops *o, const void *x, const qz_layout *L,
                   int affine, float *scale, int8_t *zp, int8_t *q, int32_t *ws, int threads,
                   const qz_plan *plan) {
    const int64_t R = L->outer, C = L->channels, I = L->inner, K = C * I;
    const int es = L->es;
    int32_t *colws = ws + 4 * C, *accs = colws + plan->shared_words;
    float *inv = (float *)(ws + 2 * C), *col_inv = (float *)colws;
    int32_t *zpi = ws + 3 * C, *col_zp = colws + K;
    int32_t qmin = affine ? -128 : -127;
    int bad = 0;
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
    {
        const int nt = tp_team_size(), id = tp_team_id();
        int64_t r0 = R * id / nt, r1 = R * (id + 1) / nt;
        int32_t *mn = accs + (int64_t)id * 2 * K, *mx = mn + K;
        uint32_t *am = (uint32_t *)mn;
        for (int64_t j = 0; j < K; j++) {
            mn[j] = affine ? INT32_MAX : 0;
            mx[j] = INT32_MIN;
        }
        for (int64_t r = r0; r < r1; r++) {
            if (affine) o->cols_aff(AT(x, r * K, es), K, mn, mx);
            else o->cols_sym(AT(x, r * K, es), K, am);
        }
#ifdef _OPENMP
#pragma omp barrier
#pragma omp single
#endif
        {
            /* Fold the threads' columns and each channel's I columns: max / min are exact, so
             * the order does not matter. */
            for (int64_t c = 0; c < C; c++) {
                int32_t lo = INT32_MAX, hi = INT32_MIN;
                uint32_t m = 0;
                for (int t = 0; t < nt; t++) {
                    const int32_t *tmn = accs + (int64_t)t * 2 * K, *tmx = tmn + K;
                    for (int64_t i = c * I; i < (c + 1) * I; i++) {
                        if (affine) {
                            lo = tmn[i] < lo ? tmn[i] : lo;
                            hi = tmx[i] > hi ? tmx[i] : hi;
                        } else {
                            uint32_t v = (uint32_t)tmn[i];
                            m = v > m ? v : m;
                        }
                    }
                }
                ws[c] = affine ? lo : (int32_t)m;
                ws[C + c] = hi;
            }
            bad = qz_tile_params(L, 0, C, affine, scale, zp, ws);
            if (!bad && I > 1)
                for (int64_t j = 0; j < K; j++) {
                    col_inv[j] = inv[j / I];
                    col_zp[j] = zpi[j / I];
                }
        } /* implicit barrier */
        if (!bad) {
            const float *ci = I > 1 ? col_inv : inv;
            const int32_t *cz = I > 1 ? col_zp : zpi;
            /* The rows this thread's stats pass read last are still in cache: quantize them
             * first, then the rest from its first row, each run forward (the order the
             * hardware prefetcher follows best). */
            int64_t row_bytes = K * es > 0 ? K * es : 1;
            int64_t cached = QZ_ROWS_CACHED_BYTES / nt / row_bytes;
            int64_t split = r1 - cached > r0 ? r1 - cached : r0;
            for (int64_t r = split; r < r1; r++)
                qz_write(o, L, AT(x, r * K, es), q + r * K, K, 0.0f, 0, ci, cz, qmin);
            for (int64_t r = r0; r < split; r++)
                qz_write(o, L, AT(x, r * K, es), q + r * K, K, 0.0f, 0, ci, cz, qmin);
            qz_publish(L);
        }
    }
    return bad;
}

/* o32: the float32 loops of the same ISA (the copy plan's tiles are float32). */
int qz_channels(const qz_loops *o, const qz_loops *o32, const qz_call *call, const qz_layout *L) {
    const void *x = call->x;
    const int affine = call->mode == TP_QUANT_AFFINE;
    float *scale = call->scale;
    int8_t *zp = call->zero_point, *q = call->q;
    int32_t *ws = call->workspace;
    const int64_t ws_len = call->workspace_len;
    const int64_t C = L->channels;
    qz_plan plan = qz_make_plan(L, affine ? TP_QUANT_AFFINE : TP_QUANT_SYMMETRIC);
    int64_t tile = plan.tile;
    int threads = tp_threads_for(L->n, QZ_MIN_PER_THREAD);
    if (plan.thread_words) { /* as many threads as the caller gave buffers for */
        int64_t fit = (ws_len - 4 * C - plan.shared_words) / plan.thread_words;
        if (fit < threads) threads = fit < 1 ? 1 : (int)fit;
    }
    if (plan.kind == QZ_PLAN_ROWS) return qz_rows(o, x, L, affine, scale, zp, q, ws, threads, &plan);
    if ((C + tile - 1) / tile < threads) tile = (C + threads - 1) / threads; /* feed every thread */
    int64_t ntiles = (C + tile - 1) / tile;
    float *bufs = (float *)(ws + 4 * C);
    int bad = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) reduction(| : bad) if (threads > 1)
#endif
    for (int64_t t = 0; t < ntiles; t++) {
        int64_t c0 = t * tile, c1 = c0 + tile < C ? c0 + tile : C;
        if (plan.kind == QZ_PLAN_COPY) {
            const int id = tp_team_id();
            bad |= qz_tile_copy(o, o32, x, L, c0, c1, affine, scale, zp, q, ws,
                                bufs + (int64_t)id * plan.thread_words);
        } else {
            bad |= qz_tile(o, x, L, c0, c1, affine, scale, zp, q, ws);
        }
    }
    return bad;
}

int64_t tp_quantize_int8_workspace(int32_t dtype, int64_t outer, int64_t channels, int64_t inner,
                                   int64_t block, int32_t mode, int32_t threads) {
    qz_layout L;
    if (qz_layout_init(&L, outer, channels, inner, block) != TP_OK) return -1;
    L.es = qz_element_size(dtype);
    if (L.block || L.channels <= 1) return 0;
    qz_plan plan = qz_make_plan(&L, mode);
    return 4 * L.channels + plan.shared_words + (threads < 1 ? 1 : threads) * plan.thread_words;
}
