/*
 * tensorpress.h: the one public C header of tensorpress.
 *
 * Everything between the "cdef" markers (here and in the family headers included below) is plain
 * C that cffi parses as the binding's declarations (csrc/build.py reads it), so the Python
 * binding can never drift from the prototypes the kernels are compiled against.
 *
 * Rules every kernel follows: arithmetic on raw pointers and lengths, a status code returned
 * (TP_OK or a negative TP_ERR_*), no allocation behind the caller's back, no printing.
 */
#ifndef TENSORPRESS_H
#define TENSORPRESS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* cdef: begin */
#define TP_OK 0
#define TP_ERR_ARGUMENT -1      /* an argument is out of range or inconsistent */
#define TP_ERR_CORRUPT -2       /* encoded data is damaged or truncated */
#define TP_ERR_NONFINITE -3     /* NaN or Inf where finite values are required */
#define TP_ERR_BUFFER -4        /* an output or workspace buffer is too small */
#define TP_ERR_UNSUPPORTED -5   /* not available in this build or on this CPU */

/* element types understood by the kernels */
#define TP_FLOAT32 0
#define TP_FLOAT64 1
#define TP_FLOAT16 2    /* IEEE half, passed as its uint16 bits */
#define TP_BFLOAT16 3 /* bfloat16, passed as its uint16 bits */

/* instruction-set variants a kernel may be compiled for (csrc/cpu.c picks one at load) */
#define TP_ISA_SCALAR 0     /* the plain C reference, never vectorized */
#define TP_ISA_BASELINE 1   /* portable build: whatever the compiler's default target allows */
#define TP_ISA_AVX2 2       /* x86-64 with AVX2 + FMA */
#define TP_ISA_AVX512 3     /* x86-64 with AVX-512F */

const char *tp_status_message(int status);

/* 1 when this build has the variant and this CPU can run it */
int tp_isa_available(int isa);
/* the variant the plain entries run: the best this CPU has (each tp_<kernel>_isa takes another) */
int tp_isa_current(void);
/* 1 when the AVX-512 variant converts to bfloat16 with AVX512_BF16's instruction (a CPU that has
 * it, unless TENSORPRESS_NO_AVX512_BF16 is set to other than 0 when first asked) */
int tp_cpu_has_avx512_bf16(void);

/* A byte range [start, end) of one buffer, and whether a kernel writes it: the workspace entry
 * of the overlap checks (a written buffer may share no byte with any other buffer). */
typedef struct {
    uintptr_t start, end;
    int32_t writes;
    int32_t pad;
} tp_span;

/* threads: 1 when the build has OpenMP; the count every parallel kernel may use */
int tp_openmp_enabled(void);
int tp_get_num_threads(void);
int tp_set_num_threads(int n);
/* cdef: end */

#include "tp_adam.h"
#include "tp_quant.h"
#include "tp_topk.h"
#include "tp_huffman.h"
#include "tp_floatcodec.h"
#include "tp_stream.h"

#ifdef __cplusplus
}
#endif

#endif /* TENSORPRESS_H */
