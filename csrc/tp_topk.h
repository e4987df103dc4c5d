/* tp_topk.h: the topk kernel family's public declarations (see topk.c). */
#ifndef TP_TOPK_H
#define TP_TOPK_H

/* cdef: begin */
/* cdef: end */

#endif /* TP_TOPK_H */
