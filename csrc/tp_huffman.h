/* tp_huffman.h: the huffman kernel family's public declarations (see huffman.c). */
#ifndef TP_HUFFMAN_H
#define TP_HUFFMAN_H

/* cdef: begin */
/* cdef: end */

#endif /* TP_HUFFMAN_H */
