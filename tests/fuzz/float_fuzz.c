/*
 * float_fuzz.c: fuzz target for the float codec's decoder (and the encoder's round trip),
 * csrc/floatcodec/, docs/float_codec.md. The twin of huffman_fuzz.c.
 *
 * Each input is used twice:
 *   1. as a stream: parse + decode into a heap buffer of exactly count * planes bytes (so the
 *      sanitizers see any read or write out of bounds), with a workspace of exactly the size
 *      tp_float_workspace_size asks for, by every kernel variant the CPU runs, which must agree
 *      (on the status, and on the bytes when it is TP_OK); then once more resealed (magic,
 *      version, a valid dtype and chunk size, the shape, the header CRC-32 fixed) so that the
 *      block-size table and the block decoders see the input, not just the header checksum;
 *   2. as data: data[0] picks the dtype, the chunk size (2^10..2^12 elements), the shape and
 *      whether the elements are skewed (exponent byte narrowed, mantissa bytes masked) so that
 *      planes are Huffman-coded or single-symbol; the rest is the elements' bytes. Encoded by
 *      every variant (identical bytes), decoded back (bit-exact), then damaged by one bit flip,
 *      one truncation and one appended byte chosen from the input: each damaged stream must be
 *      refused (TP_ERR_CORRUPT).
 *
 * Build as a libFuzzer target (clang):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -DTP_FUZZ_LIBFUZZER -Icsrc \
 *     tests/fuzz/float_fuzz.c csrc/huffman/[a-z]*.c csrc/floatcodec/[a-z]*.c csrc/cpu.c -o float_fuzz
 *   ./float_fuzz -max_total_time=60 -max_len=40000 corpus/
 * or as a self-driving random fuzzer with only gcc (no libFuzzer):
 *   gcc -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fopenmp -Icsrc \
 *     tests/fuzz/float_fuzz.c csrc/huffman/[a-z]*.c csrc/floatcodec/[a-z]*.c csrc/cpu.c -o float_fuzz
 *   ./float_fuzz 60 [seed]        (seconds; a failing input is saved to float_fuzz_crash.bin)
 *   ./float_fuzz -r float_fuzz_crash.bin      (replays one input)
 * Every variant includes the scalar reference (floatcodec/ref.c around huffman/ref.c): the fast
 * decoders must give its verdict on every input, and the fast encoders its bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensorpress.h"

#define MAX_DECODE (1 << 22) /* bytes of output a forged stream may make us allocate */

static const uint8_t *current_input; /* what fail() saves */
static size_t current_size;

/* The self-driving fuzzer saves the failing input to float_fuzz_crash.bin (replay it with
 * `float_fuzz -r float_fuzz_crash.bin`); libFuzzer saves its own crash-* file. */
static void fail(const char *what, size_t size) {
    fprintf(stderr, "float_fuzz: %s (input of %zu bytes)\n", what, size);
#ifndef TP_FUZZ_LIBFUZZER
    FILE *f = current_input ? fopen("float_fuzz_crash.bin", "wb") : NULL;
    if (f) {
        fwrite(current_input, 1, current_size, f);
        fclose(f);
        fprintf(stderr, "float_fuzz: input saved to float_fuzz_crash.bin\n");
    }
#endif
    abort();
}

static int planes_of(int dtype) {
    return dtype == TP_FLOAT64 ? 8 : dtype == TP_FLOAT32 ? 4 : 2;
}

/* Decode blob by every variant this CPU runs (and the plain entry): all must agree on the
 * status and, when TP_OK, on every byte. When `keep` is given and the stream decodes, the
 * decoded bytes are copied there (at most keep_size bytes, the caller's buffer). */
static int decode_fresh(const uint8_t *blob, size_t size, uint8_t *keep, size_t keep_size) {
    tp_float_info info;
    int status = tp_float_parse(blob, (int64_t)size, &info);
    if (status != TP_OK) {
        if (status != TP_ERR_CORRUPT) fail("parse returned neither OK nor CORRUPT", size);
        return status;
    }
    if (info.planes != planes_of(info.dtype)) fail("parse: planes do not match the dtype", size);
    if (info.count > MAX_DECODE / info.planes) return TP_ERR_ARGUMENT;
    const size_t bytes = (size_t)info.count * (size_t)info.planes;
    int64_t ws_size = tp_float_workspace_size(info.count, info.dtype, info.chunk_log2, 1, 0);
    if (ws_size < 0) fail("workspace size refused for a parsed header", size);
    /* exactly the announced bytes on the heap: ASan flags one byte too far */
    uint8_t *out = malloc(bytes ? bytes : 1);
    uint8_t *first = malloc(bytes ? bytes : 1);
    void *ws = malloc(ws_size ? (size_t)ws_size : 1);
    status = tp_float_decode(blob, (int64_t)size, out, info.count, ws, ws_size);
    if (status != TP_OK && status != TP_ERR_CORRUPT) fail("decode returned neither OK nor CORRUPT", size);
    if (status == TP_OK) memcpy(first, out, bytes);
    for (int isa = TP_ISA_SCALAR; isa <= TP_ISA_AVX512; isa++) {
        if (!tp_isa_available(isa)) continue;
        memset(out, 0xA5, bytes);
        if (tp_float_decode_isa(blob, (int64_t)size, out, info.count, ws, ws_size, isa) != status)
            fail("kernel variants disagree on the status", size);
        if (status == TP_OK && memcmp(out, first, bytes))
            fail("kernel variants decode differently", size);
    }
    if (status == TP_OK && keep) memcpy(keep, first, bytes < keep_size ? bytes : keep_size);
    free(out);
    free(first);
    free(ws);
    return status;
}

/* The header checksum would reject almost every random input before the block decoders see
 * it, so a copy of the input gets a valid header (when the input is long enough to hold the
 * one its fields describe): magic, version, a dtype and chunk size in range, a shape whose
 * product is the count, and a correct header CRC-32. Then the fuzzer explores the block-size
 * table, block headers, code lengths and streams directly. */
static void decode_resealed(const uint8_t *data, size_t size) {
    if (size < 20) return;
    uint64_t count = 0;
    memcpy(&count, data + 8, 8); /* little-endian hosts, as the stream */
    int dtype = data[5] & 3, ndim = data[6] & 3, chunk_log2 = 10 + data[7] % 11;
    int planes = planes_of(dtype);
    if (count > ((uint64_t)1 << 40)) count &= 0xFFFFF; /* keep big counts reachable */
    if (ndim == 0) count = 1;
    uint64_t n_chunks = (count + (1ull << chunk_log2) - 1) >> chunk_log2;
    uint64_t hsize = 16 + 8 * (uint64_t)ndim + 4 * planes * n_chunks + 4;
    if (hsize > size) return;
    uint8_t *copy = malloc(size);
    memcpy(copy, data, size);
    memcpy(copy, "TPFC", 4);
    copy[4] = 1;
    copy[5] = (uint8_t)dtype;
    copy[6] = (uint8_t)ndim;
    copy[7] = (uint8_t)chunk_log2;
    memcpy(copy + 8, &count, 8);
    /* shape: the last dimension holds the count, the others are 1 */
    for (int d = 0; d < ndim; d++) {
        uint64_t dim = d == ndim - 1 ? count : 1;
        memcpy(copy + 16 + 8 * d, &dim, 8);
    }
    uint32_t h = 0;
    tp_huffman_crc32(copy, (int64_t)hsize - 4, 0, &h);
    memcpy(copy + hsize - 4, &h, 4);
    decode_fresh(copy, size, NULL, 0);
    /* and once more with the block-size table made consistent with the input's length: the
     * last block takes whatever the others leave (so blocks, not the table, get explored) */
    int64_t n_blocks = (int64_t)(planes * n_chunks);
    if (n_blocks > 0) {
        uint64_t total = 0;
        for (int64_t b = 0; b + 1 < n_blocks; b++) {
            uint32_t s;
            memcpy(&s, copy + 16 + 8 * ndim + 4 * b, 4);
            total += s;
        }
        if (total + 6 <= size - hsize) {
            uint32_t last = (uint32_t)(size - hsize - total);
            if ((uint64_t)last == size - hsize - total) {
                memcpy(copy + 16 + 8 * ndim + 4 * (n_blocks - 1), &last, 4);
                tp_huffman_crc32(copy, (int64_t)hsize - 4, 0, &h);
                memcpy(copy + hsize - 4, &h, 4);
                decode_fresh(copy, size, NULL, 0);
            }
        }
    }
    free(copy);
}

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

/* 1 when byte `pos` of the valid stream `blob` is the type byte of a block that codes a plane
 * of one byte (the "Known gap" above). */
static int one_input(const uint8_t *data, size_t size) {
    current_input = data;
    current_size = size;
    decode_fresh(data, size, NULL, 0);
    decode_resealed(data, size);
    if (size < 1) return 0;

    /* data[0]: bits 0-1 dtype, bits 2-3 chunk_log2 10..12 (3 -> 10), bit 4 skewed, bits 5-7 the
     * mantissa mask's width when skewed; the last byte picks the shape */
    const int dtype = data[0] & 3, planes = planes_of(dtype);
    const int32_t chunk_log2 = 10 + ((data[0] >> 2) & 3) % 3;
    const int64_t count = (int64_t)(size - 1) / planes;
    const size_t bytes = (size_t)count * (size_t)planes;
    uint8_t *src = malloc(bytes ? bytes : 1);
    memcpy(src, data + 1, bytes);
    if (data[0] & 0x10) {
        const uint8_t mask = (uint8_t)((1u << (data[0] >> 5)) - 1);
        for (int64_t i = 0; i < count; i++) {
            uint8_t *e = src + i * planes;
            for (int p = 0; p < planes - 1; p++) e[p] &= mask;
            /* top byte: sign + a few exponents (little-endian: the top byte comes last) */
            e[planes - 1] = (uint8_t)((e[planes - 1] & 0x80) | (0x3C + (e[planes - 1] & 3)));
        }
    }
    int32_t ndim = 1;
    int64_t shape[3] = {count, 1, 1};
    const uint8_t pick = data[size - 1];
    if (count == 1 && (pick & 3) == 0) ndim = 0;
    else if ((pick & 3) == 1) { ndim = 2; shape[0] = 1; shape[1] = count; }
    else if ((pick & 3) == 2 && count % 2 == 0) { ndim = 3; shape[0] = 2; shape[1] = count / 2; }

    const int64_t bound = tp_float_bound(count, dtype, ndim, chunk_log2);
    const int64_t ws_size = tp_float_workspace_size(count, dtype, chunk_log2, 1, 1);
    if (bound < 0 || ws_size < 0) fail("bound or workspace size refused", size);
    /* exactly the bound and the workspace asked for: ASan flags a write past either */
    uint8_t *blob = malloc((size_t)bound);
    void *ws = malloc(ws_size ? (size_t)ws_size : 1);
    int64_t written = 0;
    if (tp_float_encode(src, count, dtype, ndim, shape, chunk_log2, blob, bound, ws, ws_size,
                        &written) != TP_OK)
        fail("encode failed", size);
    if (written < 20 || written > bound) fail("encode wrote a bad length", size);
    /* every kernel variant writes the same bytes */
    uint8_t *other = malloc((size_t)bound);
    for (int isa = TP_ISA_SCALAR; isa <= TP_ISA_AVX512; isa++) {
        int64_t w2 = 0;
        if (!tp_isa_available(isa)) continue;
        if (tp_float_encode_isa(src, count, dtype, ndim, shape, chunk_log2, other, bound, ws,
                                ws_size, &w2, isa) != TP_OK ||
            w2 != written || memcmp(other, blob, (size_t)written))
            fail("kernel variants encode differently", size);
    }
    free(other);
    tp_float_info info;
    if (tp_float_parse(blob, written, &info) != TP_OK || info.count != count ||
        info.dtype != dtype || info.ndim != ndim || info.chunk_log2 != chunk_log2 ||
        info.planes != planes)
        fail("parse of a fresh stream disagrees", size);
    for (int d = 0; d < ndim; d++)
        if (info.shape[d] != shape[d]) fail("shape not restored", size);
    uint8_t *back = malloc(bytes ? bytes : 1);
    if (decode_fresh(blob, (size_t)written, back, bytes) != TP_OK) fail("round trip refused", size);
    if (memcmp(back, src, bytes)) fail("round trip differs", size);

    uint64_t h = mix(size * 0x9E3779B97F4A7C15ULL + data[size - 1] + ((uint64_t)data[size / 2] << 8));
    /* one bit flip */
    const size_t pos = (size_t)(h % (uint64_t)written);
    const int bit = (int)((h >> 40) & 7);
    blob[pos] ^= (uint8_t)(1u << bit);
    memset(back, 0, bytes);
    int status = decode_fresh(blob, (size_t)written, back, bytes);
    if (status != TP_ERR_CORRUPT) {
        fprintf(stderr, "float_fuzz: bit %d of byte %zu of a %lld-byte stream\n", bit, pos,
                (long long)written);
        fail("bit flip not detected", size);
    }
    blob[pos] ^= (uint8_t)(1u << bit);
    /* truncation */
    const size_t cut = (size_t)(mix(h) % (uint64_t)written);
    if (decode_fresh(blob, cut, NULL, 0) != TP_ERR_CORRUPT) fail("truncation not detected", size);
    /* trailing garbage, in a buffer of exactly written + 1 bytes */
    uint8_t *longer = malloc((size_t)written + 1);
    memcpy(longer, blob, (size_t)written);
    longer[written] = (uint8_t)h;
    if (decode_fresh(longer, (size_t)written + 1, NULL, 0) != TP_ERR_CORRUPT)
        fail("trailing byte not detected", size);
    free(longer);
    free(src);
    free(blob);
    free(ws);
    free(back);
    return 0;
}

#ifdef TP_FUZZ_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tp_set_num_threads(1);
    return one_input(data, size);
}
#else
/* Element bytes of one kind: random bits, weights-like floats, few distinct values, runs. */
static void fill(uint8_t *buf, size_t size, int mode, uint64_t r) {
    for (size_t i = 0; i < size; i++) {
        uint64_t x = mix(r + i);
        switch (mode) {
            case 0: buf[i] = (uint8_t)x; break;
            case 1: buf[i] = (uint8_t)(x % 3); break;
            case 2: buf[i] = (uint8_t)((x & 0xFF) * (x >> 8 & 0xFF) >> 10); break;
            case 3: buf[i] = (uint8_t)(i / 97); break;
            default: break;
        }
    }
    if (mode == 4) { /* float32 like trained weights: a few exponents, random mantissas */
        for (size_t i = 0; i + 4 <= size; i += 4) {
            uint64_t x = mix(r + i);
            uint32_t bits = (uint32_t)(x & 0x807FFFFF) | (uint32_t)(0x78 + (x >> 32) % 6) << 23;
            memcpy(buf + i, &bits, 4);
        }
        for (size_t i = size & ~(size_t)3; i < size; i++) buf[i] = (uint8_t)mix(r - i);
    }
    if (mode == 5) { /* special values: zeros, signed zeros, infinities, NaNs, subnormals */
        static const uint8_t special[] = {0x00, 0x80, 0x7F, 0xFF, 0x01, 0x7C, 0xFC, 0x3C};
        for (size_t i = 0; i < size; i++) buf[i] = special[mix(r + i) % sizeof special];
    }
}

/* A small self-driving fuzzer: random inputs of several shapes plus mutated valid streams. */
int main(int argc, char **argv) {
    if (argc > 2 && !strcmp(argv[1], "-r")) { /* replay one saved input */
        FILE *f = fopen(argv[2], "rb");
        if (!f) return 2;
        static uint8_t in[1 << 20];
        size_t n = fread(in, 1, sizeof in, f);
        fclose(f);
        tp_set_num_threads(1);
        one_input(in, n);
        printf("float_fuzz: %s (%zu bytes) passes\n", argv[2], n);
        return 0;
    }
    double seconds = argc > 1 ? atof(argv[1]) : 10.0;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    tp_set_num_threads(1);
    clock_t start = clock();
    uint64_t execs = 0;
    const size_t max_size = 24000; /* several 2^10-element chunks of every dtype */
    uint8_t *buf = malloc(max_size);
    while ((double)(clock() - start) / CLOCKS_PER_SEC < seconds) {
        uint64_t r = mix(seed + execs * 0x9E3779B97F4A7C15ULL);
        /* sizes: mostly small, sometimes several chunks; tiny ones hit the one-element chunks */
        size_t size = (r & 3) == 0 ? (size_t)((r >> 8) % max_size)
                    : (r & 3) == 1 ? (size_t)((r >> 8) % 40) : (size_t)((r >> 8) % 6000);
        fill(buf, size, (int)((r >> 24) % 6), r);
        if (size) buf[0] = (uint8_t)(r >> 32); /* dtype, chunk, skew: all kinds */
        one_input(buf, size);
        execs++;

        /* and a mutated valid stream, decoded straight and resealed */
        int dtype = (int)((r >> 40) & 3), planes = planes_of(dtype);
        int32_t cl = 10 + (int32_t)((r >> 42) % 3);
        int64_t n = (int64_t)size / planes, shape[1] = {n}, written = 0;
        int64_t bound = tp_float_bound(n, dtype, 1, cl);
        int64_t ws_size = tp_float_workspace_size(n, dtype, cl, 1, 1);
        uint8_t *blob = malloc((size_t)bound);
        void *ws = malloc((size_t)ws_size + 8);
        if (tp_float_encode(buf, n, dtype, 1, shape, cl, blob, bound, ws, ws_size, &written) != TP_OK)
            fail("encode failed", size);
        int flips = 1 + (int)(mix(r) % 4);
        for (int f = 0; f < flips && written > 0; f++) {
            uint64_t m = mix(r + 1000 + (uint64_t)f);
            size_t at = (size_t)(m % (uint64_t)written);
            blob[at] = (m >> 32) & 1 ? (uint8_t)(m >> 40) : blob[at] ^ (uint8_t)(1u << ((m >> 40) & 7));
        }
        current_input = blob;
        current_size = (size_t)written;
        decode_fresh(blob, (size_t)written, NULL, 0);
        decode_resealed(blob, (size_t)written);
        execs++;
        free(blob);
        free(ws);
    }
    printf("float_fuzz: %llu executions in %.0f s, 0 crashes\n", (unsigned long long)execs, seconds);
    free(buf);
    return 0;
}
#endif
