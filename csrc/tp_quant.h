/* tp_quant.h: the quant kernel family's public declarations (see quant.c). */
#ifndef TP_QUANT_H
#define TP_QUANT_H

/* cdef: begin */
/* cdef: end */

#endif /* TP_QUANT_H */
