/* cpu.c: one-time CPU feature detection, the active kernel variant, and the thread count. */
#include <stdlib.h>
#include <string.h>

#include "common.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if TP_HAVE_X86_VARIANTS
#include <cpuid.h>

/* F16C from CPUID leaf 1 (ECX bit 29): not every compiler's __builtin_cpu_supports knows it.
 * Its registers are the AVX ones, whose OS support the AVX2 check below already covers. */
static int has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif

static int detect_isa(void) {
#if TP_HAVE_X86_VARIANTS
    /* __builtin_cpu_supports also checks that the OS saves the wide registers (XGETBV). */
    __builtin_cpu_init();
    if (!has_f16c()) return TP_ISA_BASELINE;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return TP_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return TP_ISA_AVX2;
#endif
    return TP_ISA_BASELINE;
}

#if TP_HAVE_X86_VARIANTS
/* AVX512_BF16 (vcvtne2ps2bf16), which the AVX-512 mixed-precision Adam step uses where its
 * rounding is the reference's (x86_avx512_mixed.c). Detected once, like the ISA.
 * TENSORPRESS_NO_AVX512_BF16=1 in the environment disables it: the AVX-512 CPUs without it
 * (Skylake-X, Ice Lake) run the integer rounding, and the tests check that path here too. */
static int detected_bf16 = -1;

int tp_cpu_has_avx512_bf16(void) {
    if (detected_bf16 < 0) {
        const char *off = getenv("TENSORPRESS_NO_AVX512_BF16");
        __builtin_cpu_init();
        detected_bf16 = tp_isa_available(TP_ISA_AVX512) && __builtin_cpu_supports("avx512bf16") &&
                        !(off && off[0] && strcmp(off, "0") != 0);
    }
    return detected_bf16;
}
#else
int tp_cpu_has_avx512_bf16(void) { return 0; }
#endif

/* Detected once: every kernel entry asks whether its variant may run, and CPUID is slow,
 * above all under a hypervisor, where each one traps (about 2 us of a 4 us one-element
 * Adam step before this cache). A racing first call only stores the same value twice. */
static int detected_isa = -1;

static int best_isa(void) {
    if (detected_isa < 0) detected_isa = detect_isa();
    return detected_isa;
}

/* The user's thread count (tp_set_num_threads; 0 = not set yet). */
static int num_threads = 0;

int tp_isa_available(int isa) {
    if (isa == TP_ISA_SCALAR || isa == TP_ISA_BASELINE) return 1;
#if TP_HAVE_X86_VARIANTS
    if (isa == TP_ISA_AVX2 || isa == TP_ISA_AVX512) return isa <= best_isa();
#endif
    return 0;
}

/* There is no process-wide switch of variant: a call that wants another one names it
 * (tp_<kernel>_isa), so threads and tests cannot change what other callers run. */
int tp_isa_current(void) { return best_isa(); }

int tp_openmp_enabled(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int tp_get_num_threads(void) {
    if (num_threads <= 0) {
#ifdef _OPENMP
        num_threads = omp_get_max_threads(); /* honours OMP_NUM_THREADS */
#else
        num_threads = 1;
#endif
    }
    return num_threads;
}

int tp_set_num_threads(int n) {
    TP_RETURN_IF(n < 1, TP_ERR_ARGUMENT);
#ifndef _OPENMP
    TP_RETURN_IF(n != 1, TP_ERR_UNSUPPORTED);
#endif
    num_threads = n;
    return TP_OK;
}

int tp_threads_for(int64_t work, int64_t min_per_thread) {
    int limit = tp_get_num_threads();
    if (min_per_thread < 1) min_per_thread = 1;
    int64_t useful = work / min_per_thread;
    if (useful < 1) return 1;
    return useful < limit ? (int)useful : limit;
}

const char *tp_status_message(int status) {
    switch (status) {
        case TP_OK: return "ok";
        case TP_ERR_ARGUMENT: return "invalid argument";
        case TP_ERR_CORRUPT: return "corrupt or truncated data";
        case TP_ERR_NONFINITE: return "non-finite value (NaN or Inf)";
        case TP_ERR_BUFFER: return "buffer too small";
        case TP_ERR_UNSUPPORTED: return "not supported by this build or CPU";
        default: return "unknown error";
    }
}
