/*
 * encode.c: the float codec's encoder. Per chunk of 2^chunk_log2 elements: split into byte
 * planes in the thread's scratch (the chunk is read from memory once; the planes stay in
 * cache), plan each plane's block (a plane whose sample looks random: raw at once), then write
 * the blocks at the chunk's offset in the stream.
 * No pass over the whole tensor, and no copy of it, happens outside this loop.
 *
 * With threads, chunks are taken in order from a shared counter and each waits only for the
 * previous chunk's plan to know its offset (the scheme of the Huffman encoder, huffman/encode.c).
 */
#include "floatcodec_internal.h"

#ifdef _OPENMP
#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
static void float_yield(void) { sched_yield(); }
#else
static void float_yield(void) {}
#endif
#endif

/* What a chunk needs: its source elements, its planes' plans, the thread's scratch. */
typedef struct {
    const huff_block_encoder *enc;
    float_split_fn split;
    huff_crc32_fn crc32;
    int planes;
} chunk_coder;

/* Whether the plane's sample looks uniformly random (floatcodec_internal.h). */
static int sample_looks_random(const uint8_t *plane, int64_t len) {
    if (len < FLOAT_SAMPLE_MIN) return 0;
    uint32_t c[256] = {0};
    uint64_t n = 0;
    for (int64_t i = 0; i < len; i += FLOAT_SAMPLE_STEP, n++) c[plane[i]]++;
    uint64_t pairs = 0; /* <= n^2 <= 2^34 (len <= 2^20), times 239: no overflow */
    for (int s = 0; s < 256; s++) pairs += (uint64_t)c[s] * (c[s] ? c[s] - 1 : 0);
    return pairs * FLOAT_RANDOM_PAIRS <= n * (n - 1);
}

/* The block the codec writes for a planned plane (docs/float_codec.md section 6): a Huffman
 * code's block with whichever of its two table layouts is smaller (the range table unless the
 * used symbols span nearly all 256), kept only when it saves at least 1/FLOAT_MIN_GAIN of the
 * plane; else raw. Single-symbol and empty planes stay as planned. */
static void choose_block(huff_plan *plan, int64_t len) {
    if (plan->type == BLOCK_RLE || !plan->huffman_size) return;
    const int64_t full = plan->huffman_size;
    const int64_t range = full - HUFF_LENGTHS_BYTES + huff_range_table_bytes(plan->lengths);
    const int64_t coded = range < full ? range : full, raw = HUFF_BLOCK_HEADER + len;
    if ((raw - coded) * FLOAT_MIN_GAIN >= len) {
        plan->type = range < full ? BLOCK_HUFF_RANGE : BLOCK_HUFF;
        plan->size = (uint32_t)coded;
    } else {
        plan->type = BLOCK_RAW;
        plan->size = (uint32_t)raw;
    }
}

/* Split the chunk into scratch and plan its blocks; returns its bytes in the stream. */
static int64_t plan_chunk(const chunk_coder *cc, const uint8_t *src, int64_t len,
                          uint8_t *scratch, huff_plan *plans) {
    cc->split(src, len, cc->planes, scratch);
    int64_t bytes = 0;
    for (int p = 0; p < cc->planes; p++) {
        const uint8_t *plane = scratch + p * len;
        huff_plan *plan = &plans[p];
        if (sample_looks_random(plane, len)) { /* raw, with only its checksum computed */
            plan->type = BLOCK_RAW;
            plan->size = (uint32_t)(HUFF_BLOCK_HEADER + len);
            plan->huffman_size = 0;
            plan->checksum = cc->crc32(0, plane, (size_t)len);
        } else {
            cc->enc->plan(plane, len, plan);
            choose_block(plan, len);
        }
        bytes += plan->size;
    }
    return bytes;
}

static int write_chunk(const chunk_coder *cc, const uint8_t *scratch, int64_t len,
                       const huff_plan *plans, uint8_t *dst) {
    for (int p = 0; p < cc->planes; p++) {
        int status = cc->enc->write(scratch + p * len, len, &plans[p], dst);
        TP_RETURN_IF(status != TP_OK, status);
        dst += plans[p].size;
    }
    return TP_OK;
}

static int encode_chunks(const chunk_coder *cc, const uint8_t *src, int64_t count,
                         int32_t chunk_log2, huff_plan *plans, uint8_t *scratch,
                         int64_t scratch_size, uint8_t *dst, int64_t hsize, int threads) {
    const int64_t cs = (int64_t)1 << chunk_log2, n_chunks = float_chunk_count(count, chunk_log2);
    const int planes = cc->planes;
    int status = TP_OK;
    if (threads <= 1) {
        int64_t offset = hsize;
        for (int64_t c = 0; c < n_chunks && status == TP_OK; c++) {
            int64_t len = count - c * cs < cs ? count - c * cs : cs;
            int64_t bytes = plan_chunk(cc, src + c * cs * planes, len, scratch, plans + c * planes);
            status = write_chunk(cc, scratch, len, plans + c * planes, dst + offset);
            offset += bytes;
        }
        return status;
    }
#ifdef _OPENMP
    /* The chunk's offset travels in its first plane's plan (offset / ready). */
    for (int64_t c = 0; c < n_chunks; c++) plans[c * planes].ready = 0;
    plans[0].offset = hsize;
    plans[0].ready = 1;
    int64_t next = 0;
#pragma omp parallel num_threads(threads) reduction(min : status)
    {
        int mine = TP_OK; /* the reduction's private copy starts at INT_MAX, not TP_OK */
        uint8_t *own = scratch + tp_team_id() * scratch_size;
        for (;;) {
            int64_t c;
#pragma omp critical(tp_float_next_chunk)
            c = next++;
            if (c >= n_chunks) break;
            int64_t len = count - c * cs < cs ? count - c * cs : cs;
            huff_plan *mine_plans = plans + c * planes;
            int64_t bytes = plan_chunk(cc, src + c * cs * planes, len, own, mine_plans);
            for (int spins = 0;; spins++) {
#pragma omp flush
                if (mine_plans[0].ready) break;
                if (spins > 64) float_yield(); /* let a descheduled thread finish its plan */
            }
#pragma omp flush
            int64_t offset = mine_plans[0].offset;
            if (c + 1 < n_chunks) {
                plans[(c + 1) * planes].offset = offset + bytes;
#pragma omp flush
                plans[(c + 1) * planes].ready = 1;
#pragma omp flush
            }
            if (mine == TP_OK) mine = write_chunk(cc, own, len, mine_plans, dst + offset);
        }
        if (mine < status) status = mine;
    }
#endif
    return status;
}

int tp_float_encode_isa(const void *src, int64_t count, int32_t dtype, int32_t ndim,
                        const int64_t *shape, int32_t chunk_log2, uint8_t *dst,
                        int64_t dst_capacity, void *workspace, int64_t workspace_size,
                        int64_t *written, int isa) {
    TP_RETURN_IF(!written, TP_ERR_ARGUMENT);
    *written = 0;
    TP_RETURN_IF(!tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    int64_t bound = tp_float_bound(count, dtype, ndim, chunk_log2);
    TP_RETURN_IF(bound < 0 || (ndim > 0 && !shape) || (count > 0 && !src) || !dst, TP_ERR_ARGUMENT);
    TP_RETURN_IF(dst_capacity < bound, TP_ERR_BUFFER);
    TP_RETURN_IF(!huff_shape_matches(shape, ndim, (uint64_t)count), TP_ERR_ARGUMENT);
    const int planes = float_planes(dtype);
    /* as many threads as are useful and as the workspace holds scratch for */
    const int64_t one = tp_float_workspace_size(count, dtype, chunk_log2, 1, 1);
    const int64_t two = tp_float_workspace_size(count, dtype, chunk_log2, 2, 1);
    const int64_t scratch_size = two - one, plans_size = one - scratch_size;
    TP_RETURN_IF(workspace_size < one, TP_ERR_BUFFER);
    TP_RETURN_IF(count > 0 && (!workspace || ((uintptr_t)workspace & 7)), TP_ERR_ARGUMENT);
    int threads = tp_threads_for(count * planes, FLOAT_MIN_BYTES_PER_THREAD);
    if (scratch_size > 0 && (workspace_size - plans_size) / scratch_size < threads)
        threads = (int)((workspace_size - plans_size) / scratch_size);

    const int hisa = huff_pick_isa(isa);
    const chunk_coder cc = {TP_PICK(HUFF_ENCODE, hisa), TP_PICK(FLOAT_SPLIT, isa),
                            TP_PICK(HUFF_CRC32, hisa), planes};
    const int64_t hsize = float_header_size(count, ndim, chunk_log2, planes);
    float_write_header(dst, count, dtype, ndim, shape, chunk_log2);
    huff_plan *plans = (huff_plan *)workspace;
    int status = encode_chunks(&cc, (const uint8_t *)src, count, chunk_log2, plans,
                               (uint8_t *)workspace + plans_size, scratch_size, dst, hsize, threads);
    TP_RETURN_IF(status != TP_OK, status);
    uint8_t *sizes = dst + 16 + 8 * ndim;
    int64_t total = hsize, n_blocks = planes * float_chunk_count(count, chunk_log2);
    for (int64_t b = 0; b < n_blocks; b++) {
        tp_store32le(sizes + 4 * b, plans[b].size);
        total += plans[b].size;
    }
    tp_store32le(dst + hsize - 4, huff_crc32_slice8(0, dst, (size_t)(hsize - 4)));
    *written = total;
    return TP_OK;
}

int tp_float_encode(const void *src, int64_t count, int32_t dtype, int32_t ndim,
                    const int64_t *shape, int32_t chunk_log2, uint8_t *dst, int64_t dst_capacity,
                    void *workspace, int64_t workspace_size, int64_t *written) {
    return tp_float_encode_isa(src, count, dtype, ndim, shape, chunk_log2, dst, dst_capacity,
                               workspace, workspace_size, written, tp_isa_current());
}
