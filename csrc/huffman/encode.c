/*
 * encode.c: the Huffman encoder: blocks planned and written in place, in parallel; and the
 * byte histogram entry (phase A's counting on its own).
 *
 * Encoding runs in two phases so every block is written in place: (A) per block, one pass for
 * four quarter histograms (which give the exact size of each stream for the chosen lengths)
 * and the checksum, then the lengths and the block type; (B) at the block's offset (the sum of
 * the earlier blocks' sizes), the encoding. Each block goes through A and B back to back (in
 * cache); with threads, a block waits only for the previous block's A to know its offset.
 *
 * Where the time goes (Zen 1, 2.45 GHz, Gaussian int8 data, cycles per byte): 1.1 for A's pass
 * (bound by its one store per byte), 0.15 for the lengths, 2.0 for B (bound by its ~6-7.5
 * instructions per symbol). The variant (HUFF_ENCODE in variants.c) supplies both phases:
 * the scalar reference's (ref.c), or huff_plan_block / huff_write_block below around the
 * baseline or x86 loops.
 */
#include "huffman_internal.h"

/* Give the CPU away while waiting for another thread (which may be descheduled on a busy
 * machine); a no-op where there is no portable way. */
#ifdef _OPENMP
#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
static void huff_yield(void) { sched_yield(); }
#elif defined(_WIN32)
#include <windows.h>
static void huff_yield(void) { SwitchToThread(); }
#else
static void huff_yield(void) {}
#endif
#endif

/* The block's type and, for Huffman, its lengths (from `code_lengths`) and exact stream sizes,
 * from the four streams' histograms c: a single symbol is stored as that symbol; otherwise
 * Huffman coding when it is smaller than the raw bytes. (The references' planning uses it
 * too: the decision is the format's, docs/huffman.md section 7.) */
void huff_plan_from_counts(const uint32_t (*c)[256], int64_t len, huff_lengths_fn code_lengths,
                           huff_plan *plan) {
    uint64_t total[256];
    int used = 0, last = 0;
    for (int s = 0; s < 256; s++) {
        total[s] = (uint64_t)c[0][s] + c[1][s] + c[2][s] + c[3][s];
        if (total[s]) used++, last = s;
    }
    memset(plan->stream_bytes, 0, sizeof plan->stream_bytes);
    plan->symbol = 0;
    plan->huffman_size = 0;
    if (used == 1) {
        plan->type = BLOCK_RLE;
        plan->symbol = (uint8_t)last;
        plan->size = HUFF_BLOCK_HEADER + 1;
        return;
    }
    plan->type = BLOCK_RAW;
    plan->size = (uint32_t)(HUFF_BLOCK_HEADER + len);
    if (used == 0) return;
    code_lengths(total, 256, HUFF_BITS, plan->lengths); /* 256 <= 2^11 symbols: never fails */
    uint64_t bytes = HUFF_PAYLOAD_START;
    for (int k = 0; k < 4; k++) {
        uint64_t bits = 0;
        for (int s = 0; s < 256; s++) bits += (uint64_t)c[k][s] * plan->lengths[s];
        plan->stream_bytes[k] = (uint32_t)((bits + 7) / 8);
        bytes += plan->stream_bytes[k];
    }
    plan->huffman_size = (uint32_t)bytes;
    if (bytes < plan->size) {
        plan->type = BLOCK_HUFF;
        plan->size = (uint32_t)bytes;
    }
}

/* Phase A: the histograms and the block's checksum in one pass, then the plan. */
void huff_plan_block(huff_scan_fn scan, const uint8_t *src, int64_t len, huff_plan *plan) {
    uint32_t c[4][256];
    memset(c, 0, sizeof c);
    plan->checksum = scan(src, len, c);
    huff_plan_from_counts((const uint32_t(*)[256])c, len, huff_code_lengths_fast, plan);
}

/* Phase B: write the block (exactly plan->size bytes at dst; nothing written past them). */
int huff_write_block(huff_encode4_fn encode4, const uint8_t *src, int64_t len,
                     const huff_plan *plan, uint8_t *dst) {
    dst[0] = plan->type;
    tp_store32le(dst + 1, plan->checksum);
    if (plan->type == BLOCK_RAW) {
        memcpy(dst + HUFF_BLOCK_HEADER, src, (size_t)len);
        return TP_OK;
    }
    if (plan->type == BLOCK_RLE) {
        dst[HUFF_BLOCK_HEADER] = plan->symbol;
        return TP_OK;
    }
    uint8_t *p = dst + HUFF_BLOCK_HEADER;
    p += huff_write_table(p, plan->type, plan->lengths);
    for (int k = 0; k < 3; k++) tp_store32le(p + 4 * k, plan->stream_bytes[k]);
    p += 12;
    uint16_t codes[256];
    uint64_t etab[256]; /* the encoder's table: loops.h */
    huff_canonical_codes(plan->lengths, codes);
    for (int s = 0; s < 256; s++) {
        unsigned l = plan->lengths[s];
        etab[s] = l ? ((uint64_t)codes[s] << (64 - l)) | l : 0;
    }
    uint8_t *begin[4], *end[4];
    for (int k = 0; k < 4; k++) {
        begin[k] = p;
        p += plan->stream_bytes[k];
        end[k] = p;
    }
    return encode4(src, len, etab, begin, end);
}

/* The blocks, planned and written by `threads` threads; the plans (and so the block sizes)
 * stay in the workspace. */
static int encode_blocks(const huff_block_encoder *enc, const uint8_t *src, int64_t count,
                         int32_t block_log2, huff_plan *plans, uint8_t *dst, int64_t hsize,
                         int threads) {
    const int64_t bs = (int64_t)1 << block_log2;
    const int64_t n_blocks = huff_block_count(count, block_log2);
    int status = TP_OK;
    if (threads <= 1) {
        /* One thread: plan and write each block while it is still in cache. */
        int64_t offset = hsize;
        for (int64_t b = 0; b < n_blocks && status == TP_OK; b++) {
            int64_t len = count - b * bs < bs ? count - b * bs : bs;
            enc->plan(src + b * bs, len, &plans[b]);
            status = enc->write(src + b * bs, len, &plans[b], dst + offset);
            offset += plans[b].size;
        }
        return status;
    }
#ifdef _OPENMP
    /* Blocks are taken in increasing order, one at a time, from a shared counter (on a busy
     * machine a thread that gets less CPU simply takes fewer). A thread plans its block, then
     * waits for the block's offset, which the thread that planned the previous block publishes
     * as soon as that plan is done; it publishes the next block's offset at once and writes its
     * block while the bytes are still in cache. So a block waits only for the previous block's
     * plan, not for all of them (a barrier between two parallel loops was 1-5% on a quiet
     * machine and far more when a thread is descheduled). The flags use OpenMP 2.0 flushes,
     * which every OpenMP compiler has. */
    for (int64_t b = 0; b < n_blocks; b++) plans[b].ready = 0;
    plans[0].offset = hsize;
    plans[0].ready = 1;
    int64_t next = 0;
#pragma omp parallel num_threads(threads) reduction(min : status)
    {
        int mine = TP_OK; /* the reduction's private copy starts at INT_MAX, not TP_OK */
        for (;;) {
            int64_t b;
#pragma omp critical(tp_huffman_next_block)
            b = next++;
            if (b >= n_blocks) break;
            int64_t len = count - b * bs < bs ? count - b * bs : bs;
            enc->plan(src + b * bs, len, &plans[b]);
            for (int spins = 0;; spins++) {
#pragma omp flush
                if (plans[b].ready) break;
                if (spins > 64) huff_yield(); /* let a descheduled thread finish its plan */
            }
#pragma omp flush
            int64_t offset = plans[b].offset;
            if (b + 1 < n_blocks) {
                plans[b + 1].offset = offset + plans[b].size;
#pragma omp flush
                plans[b + 1].ready = 1;
#pragma omp flush
            }
            if (mine == TP_OK) mine = enc->write(src + b * bs, len, &plans[b], dst + offset);
        }
        if (mine < status) status = mine;
    }
#endif
    return status;
}

int tp_huffman_encode_isa(const uint8_t *src, int64_t count, int32_t dtype, int32_t ndim,
                          const int64_t *shape, int32_t block_log2, uint8_t *dst,
                          int64_t dst_capacity, void *workspace, int64_t workspace_size,
                          int64_t *written, int isa) {
    TP_RETURN_IF(!written, TP_ERR_ARGUMENT);
    *written = 0;
    TP_RETURN_IF(!tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    TP_RETURN_IF(dtype < TP_HUFFMAN_UINT8 || dtype > TP_HUFFMAN_BYTES, TP_ERR_ARGUMENT);
    int64_t bound = tp_huffman_bound(count, ndim, block_log2);
    TP_RETURN_IF(bound < 0 || (ndim > 0 && !shape) || (count > 0 && !src) || !dst, TP_ERR_ARGUMENT);
    TP_RETURN_IF(dst_capacity < bound, TP_ERR_BUFFER);
    TP_RETURN_IF(workspace_size < tp_huffman_workspace_size(count, block_log2), TP_ERR_BUFFER);
    TP_RETURN_IF(count > 0 && (!workspace || ((uintptr_t)workspace & 7)), TP_ERR_ARGUMENT);
    TP_RETURN_IF(!huff_shape_matches(shape, ndim, (uint64_t)count), TP_ERR_ARGUMENT);

    const huff_block_encoder *enc = TP_PICK(HUFF_ENCODE, huff_pick_isa(isa));
    const int64_t hsize = huff_header_size(count, ndim, block_log2);
    huff_write_header(dst, count, dtype, ndim, shape, block_log2);
    huff_plan *plans = (huff_plan *)workspace;
    int threads = tp_threads_for(count, HUFF_MIN_PER_THREAD);
    int status = encode_blocks(enc, src, count, block_log2, plans, dst, hsize, threads);
    TP_RETURN_IF(status != TP_OK, status);
    uint8_t *sizes = dst + 16 + 8 * ndim;
    int64_t total = hsize;
    for (int64_t b = 0; b < huff_block_count(count, block_log2); b++) {
        tp_store32le(sizes + 4 * b, plans[b].size);
        total += plans[b].size;
    }
    tp_store32le(dst + hsize - 4, huff_crc32_slice8(0, dst, (size_t)(hsize - 4)));
    *written = total;
    return TP_OK;
}

int tp_huffman_encode(const uint8_t *src, int64_t count, int32_t dtype, int32_t ndim,
                      const int64_t *shape, int32_t block_log2, uint8_t *dst,
                      int64_t dst_capacity, void *workspace, int64_t workspace_size,
                      int64_t *written) {
    return tp_huffman_encode_isa(src, count, dtype, ndim, shape, block_log2, dst, dst_capacity,
                                 workspace, workspace_size, written, tp_isa_current());
}

int tp_huffman_histogram_isa(const uint8_t *src, int64_t count, int64_t *counts, int isa) {
    TP_RETURN_IF(!counts || count < 0 || (count > 0 && !src), TP_ERR_ARGUMENT);
    TP_RETURN_IF(!tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    memset(counts, 0, 256 * sizeof(int64_t));
    const huff_count_fn count_fn = TP_PICK(HUFF_COUNT, huff_pick_isa(isa));
    int threads = tp_threads_for(count, HUFF_MIN_PER_THREAD);
    (void)threads;
    const int64_t chunk = (int64_t)1 << 16; /* fits the 32-bit per-quarter counters */
    int64_t n_chunks = (count + chunk - 1) / chunk;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
    {
        int64_t local[256] = {0};
        uint32_t c[4][256];
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t k = 0; k < n_chunks; k++) {
            int64_t len = count - k * chunk < chunk ? count - k * chunk : chunk;
            memset(c, 0, sizeof c);
            count_fn(src + k * chunk, len, c);
            for (int s = 0; s < 256; s++) local[s] += (int64_t)c[0][s] + c[1][s] + c[2][s] + c[3][s];
        }
#ifdef _OPENMP
#pragma omp critical(tp_huffman_histogram)
#endif
        for (int s = 0; s < 256; s++) counts[s] += local[s];
    }
    return TP_OK;
}

int tp_huffman_histogram(const uint8_t *src, int64_t count, int64_t *counts) {
    return tp_huffman_histogram_isa(src, count, counts, tp_isa_current());
}
