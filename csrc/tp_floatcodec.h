/* tp_floatcodec.h: the lossless float codec's public declarations (csrc/floatcodec/,
 * docs/float_codec.md). Each kernel takes the ISA one way: tp_<kernel>_isa(..., isa), and
 * TP_ISA_SCALAR runs the plain references (the plane split/merge of floatcodec/ref.c around
 * the Huffman family's reference block coders). */
#ifndef TP_FLOATCODEC_H
#define TP_FLOATCODEC_H

/* cdef: begin */
/* chunks of 2^chunk_log2 elements (float_encode: 2^17 for 2-byte types, 2^16 for wider) */
#define TP_FLOAT_CODEC_MIN_CHUNK_LOG2 10
#define TP_FLOAT_CODEC_MAX_CHUNK_LOG2 20
#define TP_FLOAT_CODEC_MAX_NDIM 32

/* What a stream's header says (filled by tp_float_parse once every header check passed). The
 * dtype is an element type of tensorpress.h (TP_FLOAT32, TP_FLOAT64, TP_FLOAT16, TP_BFLOAT16);
 * planes is its size in bytes. Block b = chunk * planes + plane. */
typedef struct {
    int64_t count;                  /* elements */
    int64_t shape[32];
    int64_t header_size;            /* bytes before the first block */
    int64_t n_chunks;
    int32_t dtype;
    int32_t ndim;
    int32_t chunk_log2;
    int32_t planes;
} tp_float_info;

/* Largest stream tp_float_encode can write (-1 when an argument is out of range).
 * Incompressible data grows by 5 bytes per plane of each chunk, plus the header. */
int64_t tp_float_bound(int64_t count, int32_t dtype, int32_t ndim, int32_t chunk_log2);
/* Bytes of workspace the encoder (encode = 1) or the decoder (encode = 0) needs to run
 * `threads` threads (8-byte aligned); with less, it runs as many threads as the workspace
 * holds (at least one). -1 when an argument is out of range. */
int64_t tp_float_workspace_size(int64_t count, int32_t dtype, int32_t chunk_log2,
                                int32_t threads, int32_t encode);

/* Encode `count` elements of `dtype` (shape[ndim] is stored; its product must be count). Writes
 * at most tp_float_bound(...) bytes to dst and the length to *written. The output is identical
 * for any thread count and any instruction-set variant. */
int tp_float_encode(const void *src, int64_t count, int32_t dtype, int32_t ndim,
                    const int64_t *shape, int32_t chunk_log2, uint8_t *dst, int64_t dst_capacity,
                    void *workspace, int64_t workspace_size, int64_t *written);
int tp_float_encode_isa(const void *src, int64_t count, int32_t dtype, int32_t ndim,
                        const int64_t *shape, int32_t chunk_log2, uint8_t *dst,
                        int64_t dst_capacity, void *workspace, int64_t workspace_size,
                        int64_t *written, int isa);

/* Check a stream's header, header checksum and block-size table (the sizes must add up to the
 * stream's exact length); TP_ERR_CORRUPT when anything is wrong. */
int tp_float_parse(const uint8_t *blob, int64_t size, tp_float_info *info);

/* Decode a whole stream into dst (`count` elements, which must equal the header's count, of
 * the header's dtype). TP_ERR_CORRUPT on any damage; dst's content is then unspecified. Never
 * reads outside blob[0, size) nor writes outside dst. */
int tp_float_decode(const uint8_t *blob, int64_t size, void *dst, int64_t count,
                    void *workspace, int64_t workspace_size);
int tp_float_decode_isa(const uint8_t *blob, int64_t size, void *dst, int64_t count,
                        void *workspace, int64_t workspace_size, int isa);
/* cdef: end */

#endif /* TP_FLOATCODEC_H */
