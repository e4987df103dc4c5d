/*
 * huffman_fuzz.c: fuzz target for the Huffman decoder (and the encoder's round trip).
 *
 * Each input is used twice:
 *   1. as a stream: parse + decode into a buffer of exactly the announced size (so the
 *      sanitizers see any read or write out of bounds) by every kernel variant the CPU runs,
 *      which must agree; any status is fine, a crash is not;
 *   2. as data: encoded with small blocks by every variant (identical bytes), decoded back
 *      (must round-trip), then damaged by one bit flip, one truncation and one appended byte
 *      chosen from the input; each damaged stream must be refused (TP_ERR_CORRUPT).
 *
 * Build as a libFuzzer target (clang):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -DTP_FUZZ_LIBFUZZER -Icsrc \
 *     tests/fuzz/huffman_fuzz.c csrc/huffman/[a-z]*.c csrc/cpu.c -o huffman_fuzz
 *   ./huffman_fuzz -max_total_time=60 -max_len=20000 tests/fuzz/corpus
 * or as a self-driving random fuzzer with only gcc (no libFuzzer):
 *   gcc -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -Icsrc \
 *     tests/fuzz/huffman_fuzz.c csrc/huffman/[a-z]*.c csrc/cpu.c -o huffman_fuzz
 *   ./huffman_fuzz 60        (seconds)
 * Every variant includes the scalar reference (csrc/huffman/ref.c): the fast decoders must
 * give its verdict on every input, and the fast encoders its bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensorpress.h"

#define MAX_DECODE (1 << 22)

static void fail(const char *what, size_t size) {
    fprintf(stderr, "huffman_fuzz: %s (input of %zu bytes)\n", what, size);
    abort();
}

static int decode_fresh(const uint8_t *blob, size_t size) {
    tp_huffman_info info;
    int status = tp_huffman_parse(blob, (int64_t)size, &info);
    if (status != TP_OK) return status;
    if (info.count > MAX_DECODE) return TP_ERR_ARGUMENT;
    /* exactly `count` bytes on the heap: ASan flags one byte too far. Every kernel variant this
     * CPU runs decodes it, and all must agree (their CRC and loops differ). */
    uint8_t *out = malloc(info.count ? (size_t)info.count : 1);
    status = tp_huffman_decode(blob, (int64_t)size, out, info.count);
    for (int isa = TP_ISA_SCALAR; isa <= TP_ISA_AVX512; isa++) {
        if (!tp_isa_available(isa)) continue;
        if (tp_huffman_decode_isa(blob, (int64_t)size, out, info.count, isa) != status)
            fail("kernel variants disagree", size);
    }
    free(out);
    return status;
}

/* The header checksum would reject almost every random input before the block decoder sees
 * it, so a copy of the input also gets a correct header checksum (when its header fields say
 * where that checksum is): then coverage guidance explores block headers, code lengths, jump
 * tables and streams directly. */
static void decode_resealed(const uint8_t *data, size_t size) {
    if (size < 20) return;
    uint64_t count = 0;
    memcpy(&count, data + 8, 8);
    int ndim = data[6], block_log2 = data[7];
    if (ndim > 32 || block_log2 < 10 || block_log2 > 24 || count > ((uint64_t)1 << 40)) return;
    uint64_t n_blocks = (count + (1ull << block_log2) - 1) >> block_log2;
    uint64_t hsize = 16 + 8 * (uint64_t)ndim + 4 * n_blocks + 4;
    if (hsize > size) return;
    uint8_t *copy = malloc(size);
    memcpy(copy, data, size);
    memcpy(copy, "TPHF", 4);
    copy[4] = 2;
    uint32_t h = 0;
    tp_huffman_crc32(copy, (int64_t)hsize - 4, 0, &h);
    memcpy(copy + hsize - 4, &h, 4); /* little-endian hosts */
    decode_fresh(copy, size);
    free(copy);
}

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static int one_input(const uint8_t *data, size_t size) {
    decode_fresh(data, size);
    decode_resealed(data, size);
    if (size < 1) return 0;

    /* data[0] picks the block size and whether the rest is skewed; the rest is the payload */
    int32_t block_log2 = 10 + (data[0] & 3);
    int64_t n = (int64_t)size - 1;
    uint8_t *src = malloc((size_t)n + 1);
    for (int64_t i = 0; i < n; i++)
        src[i] = (data[0] & 4) ? (uint8_t)(data[1 + i] & (data[0] >> 3)) : data[1 + i];
    int64_t shape[1] = {n};
    int64_t bound = tp_huffman_bound(n, 1, block_log2);
    int64_t ws_size = tp_huffman_workspace_size(n, block_log2);
    uint8_t *blob = malloc((size_t)bound + 1);
    void *ws = malloc((size_t)ws_size + 8);
    int64_t written = 0;
    if (tp_huffman_encode(src, n, TP_HUFFMAN_UINT8, 1, shape, block_log2, blob, bound, ws,
                          ws_size, &written) != TP_OK)
        fail("encode failed", size);
    /* every kernel variant writes the same bytes */
    uint8_t *other = malloc((size_t)bound + 1);
    for (int isa = TP_ISA_SCALAR; isa <= TP_ISA_AVX512; isa++) {
        int64_t w2 = 0;
        if (!tp_isa_available(isa)) continue;
        if (tp_huffman_encode_isa(src, n, TP_HUFFMAN_UINT8, 1, shape, block_log2, other, bound, ws,
                                  ws_size, &w2, isa) != TP_OK ||
            w2 != written || memcmp(other, blob, (size_t)written))
            fail("kernel variants encode differently", size);
    }
    free(other);
    uint8_t *back = malloc((size_t)n + 1);
    if (tp_huffman_decode(blob, written, back, n) != TP_OK) fail("round trip refused", size);
    if (memcmp(back, src, (size_t)n)) fail("round trip differs", size);

    uint64_t h = mix(size * 0x9E3779B97F4A7C15ULL + data[size - 1] + ((uint64_t)data[size / 2] << 8));
    /* one bit flip */
    size_t pos = (size_t)(h % (uint64_t)written);
    blob[pos] ^= (uint8_t)(1u << ((h >> 40) & 7));
    if (decode_fresh(blob, (size_t)written) != TP_ERR_CORRUPT) fail("bit flip not detected", size);
    blob[pos] ^= (uint8_t)(1u << ((h >> 40) & 7));
    /* truncation */
    size_t cut = (size_t)(mix(h) % (uint64_t)written);
    if (decode_fresh(blob, cut) != TP_ERR_CORRUPT) fail("truncation not detected", size);
    /* trailing garbage */
    blob[written] = (uint8_t)h;
    if (decode_fresh(blob, (size_t)written + 1) != TP_ERR_CORRUPT) fail("trailing byte not detected", size);
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
/* A small self-driving fuzzer: random inputs of several shapes plus mutated valid streams. */
int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 10.0;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    tp_set_num_threads(1);
    clock_t start = clock();
    uint64_t execs = 0;
    uint8_t *buf = malloc(1 << 17);
    uint8_t *blob = malloc((1 << 17) + 4096);
    void *ws = malloc(1 << 16);
    while ((double)(clock() - start) / CLOCKS_PER_SEC < seconds) {
        uint64_t r = mix(seed + execs * 0x9E3779B97F4A7C15ULL);
        size_t size = (size_t)(r % 6000);
        int mode = (int)((r >> 20) % 4);
        for (size_t i = 0; i < size; i++) {
            uint64_t x = mix(r + i);
            buf[i] = mode == 0 ? (uint8_t)x : mode == 1 ? (uint8_t)(x % 3) : mode == 2 ? (uint8_t)((x & 0xFF) * (x >> 8 & 0xFF) >> 10) : (uint8_t)(i / 97);
        }
        one_input(buf, size);
        /* and a mutated valid stream, decoded straight */
        int64_t n = (int64_t)size, shape[1] = {n};
        int64_t written = 0;
        int32_t bl = 10 + (int32_t)(r % 3);
        tp_huffman_encode(buf, n, TP_HUFFMAN_UINT8, 1, shape, bl, blob,
                          tp_huffman_bound(n, 1, bl), ws, 1 << 16, &written);
        int flips = 1 + (int)(mix(r) % 4);
        for (int f = 0; f < flips && written > 0; f++) {
            uint64_t m = mix(r + 1000 + (uint64_t)f);
            blob[m % (uint64_t)written] = (m >> 32) & 1 ? (uint8_t)(m >> 40) : blob[m % (uint64_t)written] ^ (uint8_t)(1u << ((m >> 40) & 7));
        }
        decode_fresh(blob, (size_t)written);
        execs += 2;
    }
    printf("huffman_fuzz: %llu executions in %.0f s, 0 crashes\n", (unsigned long long)execs, seconds);
    free(buf);
    free(blob);
    free(ws);
    return 0;
}
#endif
