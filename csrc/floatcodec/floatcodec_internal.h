/*
 * floatcodec_internal.h: what the files of the float codec share (never seen by cffi).
 *
 *   format.c     the stream's header: layout, bounds, writing and parsing it
 *   planes.h     the split of a chunk into byte planes and their merge back (portable bodies)
 *   variants.c   those bodies per ISA, and the dispatch tables
 *   ref.c        the scalar references of the split and the merge
 *   encode.c     the encoder: chunks split, planned and written in place, in parallel
 *   decode.c     the decoder: chunks decoded plane by plane and merged, in parallel
 *
 * The codec adds no entropy coder of its own: every plane of every chunk is one block of the
 * Huffman stream (docs/huffman.md section 3), coded and decoded by the Huffman family's block
 * coders of the same ISA. docs/float_codec.md specifies the stream byte for byte.
 */
#ifndef TP_FLOATCODEC_INTERNAL_H
#define TP_FLOATCODEC_INTERNAL_H

#include "huffman/huffman_internal.h"

#define FLOAT_MAGIC "TPFC"
#define FLOAT_VERSION 1
#define FLOAT_MAX_COUNT ((int64_t)1 << 50)
/* A plane is Huffman-coded only when that saves at least 1/FLOAT_MIN_GAIN of its raw bytes:
 * a plane of nearly random mantissa bits would gain a fraction of a percent and cost a
 * Huffman pass each way (docs/float_codec.md section 6). Its blocks may be BLOCK_HUFF_RANGE
 * (huffman_internal.h), the compact table layout the Huffman stream itself never uses. */
#define FLOAT_MIN_GAIN 64
/* A plane of at least FLOAT_SAMPLE_MIN bytes whose every FLOAT_SAMPLE_STEP-th byte looks
 * uniformly random is stored raw without being counted in full (docs/float_codec.md section
 * 6). The n sampled bytes, with counts c, look random when
 *     sum c (c - 1) * FLOAT_RANDOM_PAIRS <= n (n - 1),
 * an unbiased estimate of sum p^2 <= 1/239: a collision (Renyi-2) entropy of at least 7.9
 * bits, which is a lower bound of the Shannon entropy, so coding the plane could save at most
 * 1.25%, less than 1/FLOAT_MIN_GAIN, if the sample is like the rest. Counting near-random
 * mantissa planes in full took a seventh of bfloat16's encoding time and a quarter of
 * float32's. */
#define FLOAT_SAMPLE_MIN 16384
#define FLOAT_SAMPLE_STEP 8
#define FLOAT_RANDOM_PAIRS 239

/* Bytes per element of an element type (0 for one the codec does not take). */
int float_planes(int32_t dtype);
/* Bytes before the first block. */
int64_t float_header_size(int64_t count, int32_t ndim, int32_t chunk_log2, int planes);
int64_t float_chunk_count(int64_t count, int32_t chunk_log2);
/* The header, with its block-size table and checksum left for the caller. */
void float_write_header(uint8_t *dst, int64_t count, int32_t dtype, int32_t ndim,
                        const int64_t *shape, int32_t chunk_log2);

/* The planes of n elements: plane p holds byte p of each element's bits rotated left by one
 * (the sign moves to bit 0, so the top plane is the exponent, or its top eight bits). split
 * writes plane p at dst + p * n; merge, the inverse, reads plane p at src[p] (the decoder
 * points raw planes into the stream itself). */
typedef void (*float_split_fn)(const void *src, int64_t n, int planes, uint8_t *dst);
typedef void (*float_merge_fn)(const uint8_t *const *src, int64_t n, int planes, void *dst);
void float_split_ref(const void *src, int64_t n, int planes, uint8_t *dst);
void float_merge_ref(const uint8_t *const *src, int64_t n, int planes, void *dst);

extern const float_split_fn FLOAT_SPLIT[TP_ISA_COUNT];
extern const float_merge_fn FLOAT_MERGE[TP_ISA_COUNT];

/* Below this many bytes per thread a second thread costs more than it saves. */
#define FLOAT_MIN_BYTES_PER_THREAD ((int64_t)1 << 19)

#endif /* TP_FLOATCODEC_INTERNAL_H */
