/* common.h: internal helpers shared by the kernel files (never seen by cffi). */
#ifndef TP_COMMON_H
#define TP_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include "tensorpress.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TP_RESTRICT __restrict__
#define TP_ALWAYS_INLINE static inline __attribute__((always_inline))
#define TP_NOINLINE __attribute__((noinline))
/* The scalar reference must stay scalar, so tests compare SIMD code against real scalar code. */
#if defined(__clang__)
#define TP_NO_VECTORIZE
#else
#define TP_NO_VECTORIZE __attribute__((optimize("no-tree-vectorize")))
#endif
#else
#define TP_RESTRICT
#define TP_ALWAYS_INLINE static inline
#define TP_NOINLINE
#define TP_NO_VECTORIZE
#endif

/* x86 variants are compiled with function target attributes, never global -m flags, so one
 * binary runs on any x86-64 and uses AVX2 / AVX-512 only where cpu.c found them. */
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define TP_HAVE_X86_VARIANTS 1
/* F16C (half <-> float conversions) came before AVX2 on every x86 CPU line; cpu.c checks it. */
#define TP_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
/* The AVX-512 variant is the Skylake-X set (F, BW, VL, DQ), which every AVX-512 CPU but the
 * discontinued Xeon Phi has: without BW and VL the compiler cannot use 512-bit vectors for
 * 16-bit data, and the mixed-precision Adam loops ran at 256 bits (cpu.c checks all four). */
#define TP_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
/* Kernels that use AVX512_BF16 (tp_cpu_has_avx512_bf16, tensorpress.h) take a second target. */
#define TP_TARGET_AVX512_BF16 \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c")))
#else
#define TP_HAVE_X86_VARIANTS 0
#endif

/* Names of a template header's instantiation: TP_CAT(adam_body, f32) is adam_body_f32. */
#define TP_CAT_(a, b) a##_##b
#define TP_CAT(a, b) TP_CAT_(a, b)

/* The dispatch tables: one slot per ISA code (tensorpress.h); a slot this build lacks (x86
 * variants elsewhere) is NULL, and TP_PICK falls back to the baseline variant. */
#define TP_ISA_COUNT 4
#define TP_PICK(table, isa) ((table)[(isa)] ? (table)[(isa)] : (table)[TP_ISA_BASELINE])
#if TP_HAVE_X86_VARIANTS
#define TP_X86_ONLY(...) __VA_ARGS__
#else
#define TP_X86_ONLY(...)
#endif

#define TP_RETURN_IF(cond, status) \
    do {                           \
        if (cond) return (status); \
    } while (0)

/* The calling thread's index in its OpenMP team and the team's size (0 and 1 outside a
 * parallel region, or without OpenMP). A thread's even share of n items is
 * [n * id / size, n * (id + 1) / size). */
TP_ALWAYS_INLINE int tp_team_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

TP_ALWAYS_INLINE int tp_team_size(void) {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/* Threads worth using for `work` items when each thread should get at least `min_per_thread`:
 * 1 below that size (spawning a team costs microseconds), never more than tp_get_num_threads(). */
int tp_threads_for(int64_t work, int64_t min_per_thread);

#endif /* TP_COMMON_H */
