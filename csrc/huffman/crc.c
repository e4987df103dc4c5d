/*
 * crc.c: CRC-32 (the zlib / ISO-HDLC polynomial 0x04C11DB7, reflected, initial value and final
 * XOR 0xFFFFFFFF: Python's zlib.crc32), the checksum of the Huffman stream's header and blocks.
 *
 * Three forms giving the same values, one per slot of HUFF_CRC32 (variants.c):
 *   - huffman_crc32_ref (ref.c): one bit at a time, the definition;
 *   - huff_crc32_slice8 (here): slicing-by-8 tables (Kounavis and Berry), 8 bytes per step;
 *     ~1.7 cycles/byte on Zen 1;
 *   - huff_crc32_pclmul (x86_crc.c): carry-less multiplication, ~0.25 cycles/byte.
 * The tables are crc_table.h, written by make_crc_table.py (beside this file).
 */
#include "huffman_internal.h"
#include "crc_table.h"

uint32_t huff_crc32_slice8(uint32_t crc, const uint8_t *p, size_t n) {
    uint32_t c = ~crc;
    for (; n >= 8; n -= 8, p += 8) c = huff_crc32_step8(c, tp_load64le(p));
    for (; n; n--, p++) c = (c >> 8) ^ huff_crc32_table[0][(c ^ *p) & 255];
    return ~c;
}

int tp_huffman_crc32_isa(const uint8_t *data, int64_t n, uint32_t crc, uint32_t *out, int isa) {
    TP_RETURN_IF(!out || n < 0 || (n > 0 && !data), TP_ERR_ARGUMENT);
    TP_RETURN_IF(!tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    huff_crc32_fn crc32 = TP_PICK(HUFF_CRC32, huff_pick_isa(isa));
    *out = crc32(crc, data, (size_t)n);
    return TP_OK;
}

int tp_huffman_crc32(const uint8_t *data, int64_t n, uint32_t crc, uint32_t *out) {
    return tp_huffman_crc32_isa(data, n, crc, out, tp_isa_current());
}
