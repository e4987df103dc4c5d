/*
 * topk.c: exact top-k magnitude masks in O(n) by radix selection, plus N:M masks.
 *
 * Keys. Clearing the sign bit of an IEEE float and reading the rest as an unsigned integer
 * orders magnitudes exactly (subnormals below normals, +0 and -0 both 0, Inf above every finite
 * value, NaN above Inf: that is how NaN is detected). Everything below works on these keys.
 *
 * Large inputs take the sampled path first (described at sample_range below): a sample
 * brackets the k-th key, then one pass writes the mask and collects the few keys inside the
 * bracket, and steps 5-6 below finish. When the bracket misses, the histogram path runs:
 *
 * Selection of the k-th largest key, for one array or a concatenation of many ("segments"):
 *  1. histogram pass over the data on the top digit of the key (12 bits for float32), one
 *     histogram per unit of work (one per thread), under OpenMP;
 *  2. walk the summed histogram from the top to the bucket holding the k-th key;
 *  3. if that bucket holds more candidates than the workspace can take, refine it with another
 *     histogram pass on the next digit restricted to the bucket (rare: only very concentrated
 *     data), until it fits or the key is fully resolved;
 *  4. one pass that writes the mask for everything outside the bucket (above: kept, below:
 *     dropped) and compacts the bucket's (index, key) pairs into the workspace, each unit at an
 *     offset known from its own histogram, so the candidates come out in index order;
 *  5. radix-select inside the candidates (now in cache) with 8-bit digits, compacting as it goes:
 *     it ends with the exact threshold T and the index `cut` of the last tied element kept;
 *  6. scatter the kept candidates into the mask.
 * A key is kept iff key > T, or key == T and its flat index <= cut: a rule that depends on
 * neither the thread count nor the SIMD variant, so every variant gives the same mask.
 * When the bucket is one fully resolved key (heavy ties), `cut` comes from a scan for the
 * need-th tied element and one pass applies the rule.
 *
 * Slices (axis=...) are small: each thread takes whole slices, gathers a slice's keys into its
 * workspace (one read of memory), and runs the same steps there. Long contiguous slices take
 * a sampled path of their own; float32 ones with AVX2 the split path (see split_points),
 * which reads a slice in cache three times but never branches per key.
 *
 * Variants: the passes that vectorize (mask writing, the per-slice rule pass, N:M) are one
 * always-inline body compiled as a scalar reference, a baseline build and AVX2 / AVX-512
 * builds; the histogram passes are scalar by nature and have one version.
 */
#include <math.h>
#include <string.h>
#include "common.h"

/* A second thread pays off from 64K elements (10% masks, float32: 64K keys 0.72e9 -> 1.3e9
 * elements/s, 256K 1.24e9 -> 2.2e9); at 32K a second thread still gained, but each thread's
 * histograms are merged serially, so many cores on small arrays would cost more than gain. */
#define TOPK_MIN_PER_THREAD 32768
#define TOPK_ROWS_MIN_PER_THREAD 65536
#define TOPK_ALIGN 64                /* unit ranges start at multiples of 64 of their segment, so
                                      * packed bytes and cache lines are never shared */
#define TOPK_BLOCK 64
#define TOPK_UNIT_MAX ((int64_t)1 << 31) /* elements per unit: its uint32 histogram never overflows */
#define NM_MAX_M 64

/* The digits of each key type: level L looks at bits [shift, shift + bits). Each level's shift
 * is the next one's shift + bits, so the prefix known so far is key >> (shift + bits). */
typedef struct {
    int levels;
    int shift[5];
    int bits[5];
} topk_levels;
static const topk_levels LEVELS_f16 = {2, {4, 0}, {11, 4}};
static const topk_levels LEVELS_f32 = {3, {19, 8, 0}, {12, 11, 8}};
static const topk_levels LEVELS_f64 = {5, {48, 36, 24, 12, 0}, {15, 12, 12, 12, 12}};

/* Sign-clearing masks and Inf's key per type (names pasted from a type's suffix). */
#define KEYMASK_f16 0x7fffu
#define KEYMASK_f32 0x7fffffffu
#define KEYMASK_f64 0x7fffffffffffffffULL
#define INFKEY_f16 0x7c00u
#define INFKEY_f32 0x7f800000u
#define INFKEY_f64 0x7ff0000000000000ULL

typedef struct {
    int64_t lo, hi;
} topk_range;

/* What the sampled mask pass tallies besides the mask: keys above the range, largest key. */
typedef struct {
    int64_t above;
    uint64_t kmax;
} mark_stats;

/* OpenMP pragmas inside the macro-generated functions; nothing without OpenMP. */
#ifdef _OPENMP
#define TOPK_PRAGMA(text) _Pragma(text)
#else
#define TOPK_PRAGMA(text)
#endif

/* 8 bools (0/1 bytes) -> one np.packbits byte, first bool in the most significant bit. */
TP_ALWAYS_INLINE uint8_t pack8(const uint8_t *b) {
    uint64_t v;
    memcpy(&v, b, 8);
    return (uint8_t)((v * 0x8040201008040201ULL) >> 56);
}

TP_ALWAYS_INLINE void pack_bools(uint8_t *out, const uint8_t *m, int64_t len) {
    int64_t full = len / 8;
    for (int64_t t = 0; t < full; t++) out[t] = pack8(m + 8 * t);
    if (len % 8) {
        uint8_t tail[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        memcpy(tail, m + 8 * full, (size_t)(len % 8));
        out[full] = pack8(tail);
    }
}

/* Radix-select among candidates that share the prefix key >> shift: the need-th largest
 * (ties: lower index first). Compacts into dst (may equal src). Writes the threshold key and
 * the index of the last kept element equal to it. Candidates are in index order. */
static void select_candidates(const int64_t *src_idx, const uint64_t *src_key, int64_t count,
                              int64_t need, int shift, int64_t *dst_idx, uint64_t *dst_key,
                              uint64_t *threshold, int64_t *cut) {
    const int64_t *si = src_idx;
    const uint64_t *sk = src_key;
    while (shift > 0 && count > need) {
        int bits = shift >= 8 ? 8 : shift;
        int ns = shift - bits;
        uint64_t dmask = ((uint64_t)1 << bits) - 1;
        int64_t h[256];
        memset(h, 0, sizeof h);
        for (int64_t i = 0; i < count; i++) h[(sk[i] >> ns) & dmask]++;
        int64_t above = 0, b = (int64_t)dmask;
        for (; b > 0; b--) {
            if (above + h[b] >= need) break;
            above += h[b];
        }
        need -= above;
        /* stable compaction, branch-free: always store, advance only on a match */
        int64_t w = 0;
        for (int64_t i = 0; i < count; i++) {
            int64_t id = si[i];
            uint64_t key = sk[i];
            dst_idx[w] = id;
            dst_key[w] = key;
            w += ((key >> ns) & dmask) == (uint64_t)b;
        }
        count = w;
        si = dst_idx;
        sk = dst_key;
        shift = ns;
    }
    if (count == need) {
        /* every remaining candidate is kept: the threshold is the smallest of them */
        uint64_t t = sk[0];
        for (int64_t i = 1; i < count; i++) t = sk[i] < t ? sk[i] : t;
        int64_t c = -1;
        for (int64_t i = 0; i < count; i++)
            if (sk[i] == t) c = si[i];
        *threshold = t;
        *cut = c;
        return;
    }
    /* shift == 0: all remaining share one key; keep the first `need` in index order */
    *threshold = sk[0];
    *cut = si[need - 1];
}

/* ---------------------------------------------------------------------------------------- */
/* Per-type kernels. S: the stored bits type, K: the key type, ABS: sign-clearing mask,     */
/* INFK: the key of Inf (anything above is NaN).                                             */

#define DEFINE_TOPK_TYPE(SUF, S, K, ABS, INFK)                                                \
    /* Histogram of the digit (key >> shift) & dmask over x[0, n); at level > 0 only keys whose \
     * prefix key >> pshift equals `prefix` count. */                                           \
    static int hist_piece_##SUF(const S *TP_RESTRICT x, int64_t n, int shift, K dmask,       \
                                int restricted, int pshift, K prefix, uint32_t *TP_RESTRICT h) { \
        int nan = 0;                                                                        \
        if (!restricted) {                                                                  \
            /* NaN is found from the histogram afterwards (see nan_from_hist): the hot loop  \
             * is only load, mask, shift, increment */                                      \
            int64_t i = 0;                                                                  \
            for (; i + 4 <= n; i += 4) {                                                    \
                K k0 = (K)(x[i] & ABS), k1 = (K)(x[i + 1] & ABS);                            \
                K k2 = (K)(x[i + 2] & ABS), k3 = (K)(x[i + 3] & ABS);                        \
                h[k0 >> shift]++;                                                           \
                h[k1 >> shift]++;                                                           \
                h[k2 >> shift]++;                                                           \
                h[k3 >> shift]++;                                                           \
            }                                                                               \
            for (; i < n; i++) h[(K)(x[i] & ABS) >> shift]++;                               \
            /* every NaN key lies in a digit >= Inf's; only the digit shared with Inf needs  \
             * a look at the keys themselves (rare: the data holds an Inf or a NaN) */       \
            K inf_digit = INFK >> shift;                                                    \
            for (K d = inf_digit + 1; d <= dmask; d++) nan |= h[d] != 0;                    \
            if (!nan && h[inf_digit]) {                                                     \
                K mx = 0;                                                                   \
                for (int64_t j = 0; j < n; j++) {                                           \
                    K key = (K)(x[j] & ABS);                                                \
                    mx = key > mx ? key : mx;                                               \
                }                                                                           \
                nan = mx > INFK;                                                            \
            }                                                                               \
        } else {                                                                            \
            for (int64_t i = 0; i < n; i++) {                                               \
                K k = (K)(x[i] & ABS);                                                      \
                if ((k >> pshift) == prefix) h[(k >> shift) & dmask]++;                     \
            }                                                                               \
        }                                                                                   \
        return nan;                                                                         \
    }                                                                                       \
                                                                                            \
    /* The index of the need-th element (in index order) whose key is T. */                 \
    static int64_t find_cut_##SUF(const tp_topk_segment *segs, int64_t count, K T,          \
                                  int64_t need) {                                           \
        int64_t off = 0;                                                                    \
        for (int64_t s = 0; s < count; s++) {                                               \
            const S *x = (const S *)segs[s].data;                                           \
            int64_t n = segs[s].numel;                                                      \
            for (int64_t b = 0; b < n; b += 256) {                                          \
                int64_t len = n - b < 256 ? n - b : 256, c = 0;                             \
                for (int64_t j = 0; j < len; j++) c += (K)(x[b + j] & ABS) == T;            \
                if (c >= need) {                                                            \
                    for (int64_t j = 0; j < len; j++)                                       \
                        if ((K)(x[b + j] & ABS) == T && --need == 0) return off + b + j;    \
                }                                                                           \
                need -= c;                                                                  \
            }                                                                               \
            off += n;                                                                       \
        }                                                                                   \
        return off - 1; /* not reached when the counts are right */                         \
    }                                                                                       \
                                                                                            \
    /* The mask pass over x[lo, hi) of one segment (lo a multiple of TOPK_ALIGN). Keys whose  \
     * digit d = key >> shift is above HI are kept, below LO dropped; the ones in [LO, HI]   \
     * are candidates: collected as (index, key - base) (collect=1) or decided by the rule   \
     * index <= cut (collect=0, shift=0, LO=HI). The histogram path passes one digit,        \
     * LO=HI=P; the sampled path a key range and track=1: it then also counts the kept keys \
     * into st->above, keeps the largest key in st->kmax (NaN detection), and returns -1    \
     * when the candidates would pass `cap`.                                                */ \
    TP_ALWAYS_INLINE int64_t mark_body_##SUF(S *TP_RESTRICT x, int64_t lo, int64_t hi,      \
                                             int64_t vbase, int shift, K LO, K HI, K base,  \
                                             int64_t cut, const int collect,                \
                                             uint8_t *TP_RESTRICT mask, const int out,      \
                                             const int zero, int64_t *TP_RESTRICT cidx,     \
                                             uint64_t *TP_RESTRICT ckey, const int track,   \
                                             int64_t cap, mark_stats *st) {                 \
        /* out: 0 no mask, 1 bools written straight from the compare loop, 2 packed bits  \
         * (through a block buffer) */                                                      \
        int64_t c = 0, above = 0;                                                           \
        const K span = (K)(HI - LO);                                                        \
        K kmax = 0;                                                                         \
        for (int64_t b = lo; b < hi; b += TOPK_BLOCK) {                                     \
            int64_t len = hi - b < TOPK_BLOCK ? hi - b : TOPK_BLOCK;                        \
            uint8_t buf[TOPK_BLOCK], e[TOPK_BLOCK];                                         \
            uint8_t *m = out == 1 ? mask + b : buf;                                         \
            uint8_t any = 0;                                                                \
            const S *xb = x + b;                                                            \
            if (track && c + TOPK_BLOCK > cap) return -1;                                   \
            /* one unsigned compare tests LO <= d <= HI: d - LO wraps above span below LO */ \
            for (int64_t j = 0; j < len; j++) {                                             \
                K key = (K)(xb[j] & ABS);                                                   \
                K d = key >> shift;                                                         \
                m[j] = d > HI;                                                              \
                e[j] = (K)(d - LO) <= span;                                                 \
                any |= e[j];                                                                \
                if (track) kmax = key > kmax ? key : kmax;                                  \
            }                                                                               \
            if (track)                                                                      \
                for (int64_t j = 0; j < len; j++) above += m[j];                            \
            if (any) {                                                                      \
                /* candidates are sparse: visit only the nonzero bytes of e, 8 at a time */ \
                if (len < TOPK_BLOCK) memset(e + len, 0, (size_t)(TOPK_BLOCK - len));      \
                for (int64_t w8 = 0; w8 < TOPK_BLOCK; w8 += 8) {                            \
                    uint64_t word;                                                          \
                    memcpy(&word, e + w8, 8);                                               \
                    while (word) {                                                          \
                        int64_t j = w8 + (__builtin_ctzll(word) >> 3);                      \
                        word &= word - 1;                                                   \
                        if (collect) {                                                      \
                            cidx[c] = vbase + b + j;                                        \
                            ckey[c] = (K)((K)(xb[j] & ABS) - base);                         \
                            c++;                                                            \
                        } else {                                                            \
                            m[j] = vbase + b + j <= cut;                                    \
                        }                                                                   \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
            if (zero) {                                                                     \
                /* candidates are zeroed later, if they lose */                             \
                S *xw = x + b;                                                              \
                for (int64_t j = 0; j < len; j++)                                           \
                    xw[j] = (m[j] | (uint8_t)(collect & e[j])) ? xw[j] : (S)0;              \
            }                                                                               \
            if (out == 2) pack_bools(mask + b / 8, m, len);                                 \
        }                                                                                   \
        if (track) {                                                                        \
            st->above += above;                                                             \
            st->kmax = (uint64_t)kmax > st->kmax ? (uint64_t)kmax : st->kmax;               \
        }                                                                                   \
        return c;                                                                           \
    }

DEFINE_TOPK_TYPE(f16, uint16_t, uint32_t, 0x7fffu, 0x7c00u)
DEFINE_TOPK_TYPE(f32, uint32_t, uint32_t, 0x7fffffffu, 0x7f800000u)
DEFINE_TOPK_TYPE(f64, uint64_t, uint64_t, 0x7fffffffffffffffULL, 0x7ff0000000000000ULL)

/* The key of slice element l: straight from x when the slice is contiguous, else from the
 * gathered copy. */
#define KEY_AT(l, K, ABS) (stride == 1 ? (K)(x[(l)] & (ABS)) : keys[(l)])

/* The per-slice work of one thread: gather keys, select, apply the rule. Defined per type and
 * per variant (the rule pass vectorizes). Returns 1 when a NaN was seen. */
#define DEFINE_ROW_BODY(SUF, S, K, ABS, INFK)                                                 \
    TP_ALWAYS_INLINE int row_body_##SUF(S *TP_RESTRICT x, int64_t len, int64_t stride,       \
                                        int64_t k, int packed, int zero,                    \
                                        uint8_t *TP_RESTRICT mask, int64_t mbase,           \
                                        uint64_t *thr, const topk_levels *lv,               \
                                        uint32_t *TP_RESTRICT h, K *TP_RESTRICT keys,       \
                                        int64_t *TP_RESTRICT cidx,                          \
                                        uint64_t *TP_RESTRICT ckey) {                       \
        int shift = lv->shift[0];                                                           \
        int nan = 0;                                                                        \
        K kmax = 0;                                                                         \
        /* contiguous slices are re-read from x (now in cache) instead of copied */        \
        if (stride == 1) {                                                                  \
            for (int64_t l = 0; l < len; l++) {                                             \
                K key = (K)(x[l] & ABS);                                                    \
                kmax = key > kmax ? key : kmax;                                             \
                h[key >> shift]++;                                                          \
            }                                                                               \
        } else {                                                                            \
            for (int64_t l = 0; l < len; l++) {                                             \
                K key = (K)(x[l * stride] & ABS);                                           \
                keys[l] = key;                                                              \
                kmax = key > kmax ? key : kmax;                                             \
                h[key >> shift]++;                                                          \
            }                                                                               \
        }                                                                                   \
        nan = kmax > INFK;                                                                  \
        K T;                                                                                \
        int64_t cut;                                                                        \
        if (k == 0) {                                                                       \
            T = (K)ABS; /* above every key but NaN: nothing kept */                         \
            cut = -1;                                                                       \
        } else {                                                                            \
            int64_t above = 0, d = (int64_t)(kmax >> shift);                                \
            for (; d > 0; d--) {                                                            \
                if (above + h[d] >= k) break;                                               \
                above += h[d];                                                              \
            }                                                                               \
            int64_t need = k - above;                                                       \
            /* collect the bucket: a vectorized compare per block of 64, then only the     \
             * matching bytes are visited (a branch-free compaction would chain every       \
             * store address through the previous compare: ~5 cycles per key) */           \
            int64_t c = 0;                                                                  \
            const K dk = (K)d;                                                              \
            for (int64_t b = 0; b < len; b += TOPK_BLOCK) {                                 \
                int64_t n = len - b < TOPK_BLOCK ? len - b : TOPK_BLOCK;                    \
                uint8_t e[TOPK_BLOCK];                                                      \
                /* while this slice is worked on in cache, fetch the next one (contiguous  \
                 * slices): its gather then reads from cache, not memory. Prefetches never \
                 * fault, so running past the array's end is harmless. */                  \
                if (stride == 1)                                                            \
                    for (int64_t p = 0; p < TOPK_BLOCK * (int64_t)sizeof(S); p += 64)       \
                        __builtin_prefetch((const char *)(x + len + b) + p);                \
                uint8_t any = 0;                                                            \
                for (int64_t j = 0; j < n; j++) {                                           \
                    e[j] = (KEY_AT(b + j, K, ABS) >> shift) == dk;                                  \
                    any |= e[j];                                                            \
                }                                                                           \
                if (!any) continue;                                                         \
                if (n < TOPK_BLOCK) memset(e + n, 0, (size_t)(TOPK_BLOCK - n));             \
                for (int64_t w8 = 0; w8 < TOPK_BLOCK; w8 += 8) {                            \
                    uint64_t word;                                                          \
                    memcpy(&word, e + w8, 8);                                               \
                    while (word) {                                                          \
                        int64_t j = b + w8 + (__builtin_ctzll(word) >> 3);                  \
                        word &= word - 1;                                                   \
                        cidx[c] = j;                                                        \
                        ckey[c] = KEY_AT(j, K, ABS);                                                \
                        c++;                                                                \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
            uint64_t t64;                                                                   \
            select_candidates(cidx, ckey, c, need, shift, cidx, ckey, &t64, &cut);          \
            T = (K)t64;                                                                     \
        }                                                                                   \
        memset(h, 0, sizeof(uint32_t) * ((size_t)(kmax >> shift) + 1));                     \
        if (thr) *thr = k == 0 ? 0 : (uint64_t)T;                                           \
        if (!mask && !zero) return nan;                                                     \
        if (stride == 1 && !packed) {                                                       \
            for (int64_t l = 0; l < len; l++) {                                             \
                K key = KEY_AT(l, K, ABS);                                                          \
                uint8_t keep = (key > T) | ((key == T) & (l <= cut));                       \
                if (mask) mask[mbase + l] = keep;                                           \
                if (zero) x[l] = keep ? x[l] : (S)0;                                        \
            }                                                                               \
        } else if (stride == 1 && (mbase & 7) == 0) {                                       \
            for (int64_t b = 0; b < len; b += TOPK_BLOCK) {                                 \
                int64_t n = len - b < TOPK_BLOCK ? len - b : TOPK_BLOCK;                    \
                uint8_t m[TOPK_BLOCK];                                                      \
                for (int64_t j = 0; j < n; j++) {                                           \
                    K key = KEY_AT(b + j, K, ABS);                                                  \
                    m[j] = (key > T) | ((key == T) & (b + j <= cut));                       \
                    if (zero) x[b + j] = m[j] ? x[b + j] : (S)0;                            \
                }                                                                           \
                if (mask) pack_bools(mask + (mbase + b) / 8, m, n);                         \
            }                                                                               \
        } else {                                                                            \
            for (int64_t l = 0; l < len; l++) {                                             \
                K key = KEY_AT(l, K, ABS);                                                          \
                uint8_t keep = (key > T) | ((key == T) & (l <= cut));                       \
                int64_t p = mbase + l * stride;                                             \
                if (mask) {                                                                 \
                    if (packed) {                                                           \
                        uint8_t bit = (uint8_t)(0x80u >> (p & 7));                          \
                        mask[p >> 3] = keep ? (uint8_t)(mask[p >> 3] | bit)                 \
                                            : (uint8_t)(mask[p >> 3] & ~bit);               \
                    } else {                                                                \
                        mask[p] = keep;                                                     \
                    }                                                                       \
                }                                                                           \
                if (zero && !keep) x[l * stride] = 0;                                       \
            }                                                                               \
        }                                                                                   \
        return nan;                                                                         \
    }

DEFINE_ROW_BODY(f16, uint16_t, uint32_t, 0x7fffu, 0x7c00u)
DEFINE_ROW_BODY(f32, uint32_t, uint32_t, 0x7fffffffu, 0x7f800000u)
DEFINE_ROW_BODY(f64, uint64_t, uint64_t, 0x7fffffffffffffffULL, 0x7ff0000000000000ULL)

/* N:M over one (len, inner) block: element a of a group beats b when its key is larger, or
 * equal with a lower position; an element is kept when fewer than n others beat it. */
#define DEFINE_NM_BODY(SUF, S, K, ABS, INFK)                                                  \
    TP_ALWAYS_INLINE int nm4_body_##SUF(const S *TP_RESTRICT x, int64_t groups, int32_t n,  \
                                        uint8_t *TP_RESTRICT mask) {                        \
        K bad = 0;                                                                          \
        for (int64_t g = 0; g < groups; g++) {                                              \
            K k0 = (K)(x[4 * g] & ABS), k1 = (K)(x[4 * g + 1] & ABS);                        \
            K k2 = (K)(x[4 * g + 2] & ABS), k3 = (K)(x[4 * g + 3] & ABS);                    \
            K hi = k0 > k1 ? k0 : k1;                                                       \
            K hj = k2 > k3 ? k2 : k3;                                                       \
            hi = hi > hj ? hi : hj;                                                         \
            bad = hi > bad ? hi : bad;                                                      \
            int r0 = (k1 > k0) + (k2 > k0) + (k3 > k0);                                     \
            int r1 = (k0 >= k1) + (k2 > k1) + (k3 > k1);                                    \
            int r2 = (k0 >= k2) + (k1 >= k2) + (k3 > k2);                                   \
            int r3 = (k0 >= k3) + (k1 >= k3) + (k2 >= k3);                                  \
            mask[4 * g] = r0 < n;                                                           \
            mask[4 * g + 1] = r1 < n;                                                       \
            mask[4 * g + 2] = r2 < n;                                                       \
            mask[4 * g + 3] = r3 < n;                                                       \
        }                                                                                   \
        return bad > INFK;                                                                  \
    }                                                                                       \
                                                                                            \
    TP_ALWAYS_INLINE int nm_body_##SUF(const S *TP_RESTRICT x, int64_t len, int64_t inner,  \
                                       int32_t n, int32_t m, uint8_t *TP_RESTRICT mask) {   \
        K bad = 0;                                                                          \
        for (int64_t g = 0; g < len; g += m) {                                              \
            for (int32_t a = 0; a < m; a++) {                                               \
                const S *xa = x + (g + a) * inner;                                          \
                uint8_t *ma = mask + (g + a) * inner;                                       \
                for (int64_t j = 0; j < inner; j++) {                                       \
                    K ka = (K)(xa[j] & ABS);                                                \
                    int r = 0;                                                              \
                    bad = ka > bad ? ka : bad;                                              \
                    for (int32_t b = 0; b < a; b++) r += (K)(x[(g + b) * inner + j] & ABS) >= ka; \
                    for (int32_t b = a + 1; b < m; b++)                                     \
                        r += (K)(x[(g + b) * inner + j] & ABS) > ka;                        \
                    ma[j] = r < n;                                                          \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        return bad > INFK;                                                                  \
    }

DEFINE_NM_BODY(f16, uint16_t, uint32_t, 0x7fffu, 0x7c00u)
DEFINE_NM_BODY(f32, uint32_t, uint32_t, 0x7fffffffu, 0x7f800000u)
DEFINE_NM_BODY(f64, uint64_t, uint64_t, 0x7fffffffffffffffULL, 0x7ff0000000000000ULL)

/* ---------------------------------------------------------------------------------------- */
/* Variants: each hot body compiled for each instruction set.                                */

/* FASTRANGE: an optional hand-vectorized sampled pass tried first (RANGE_NONE = none). */
#define DEFINE_TOPK_VARIANT(SUF, S, K, NAME, ATTRS, FASTRANGE)                                \
    ATTRS static int64_t mark_##SUF##_##NAME(S *x, int64_t lo, int64_t hi, int64_t vbase,   \
                                             int shift, K LO, K HI, K base, int64_t cut,    \
                                             int collect, uint8_t *mask, int packed,        \
                                             int zero, int64_t *cidx, uint64_t *ckey,       \
                                             int64_t cap, mark_stats *st) {                 \
        /* each combination a loop of its own, so no test is left inside the loops */      \
        int out = !mask ? 0 : packed ? 2 : 1;                                               \
        if (st) { /* the sampled pass: key ranges (shift 0), collects, never zeroes */     \
            if (out != 2) {                                                                 \
                int64_t done = 0;                                                           \
                int64_t c = FASTRANGE(x, lo, hi, vbase, LO, HI, mask, cidx, ckey, cap, st, &done); \
                if (c < 0) return c;                                                        \
                int64_t r = mark_body_##SUF(x, lo + done, hi, vbase, 0, LO, HI, base, 0, 1, \
                                            mask, out, 0, cidx + c, ckey + c, 1, cap - c, st); \
                return r < 0 ? r : c + r;                                                   \
            }                                                                               \
            return mark_body_##SUF(x, lo, hi, vbase, 0, LO, HI, base, 0, 1, mask, out, 0,   \
                                   cidx, ckey, 1, cap, st);                                 \
        }                                                                                   \
        if (collect) {                                                                      \
            if (out == 1 && !zero)                                                          \
                return mark_body_##SUF(x, lo, hi, vbase, shift, LO, HI, base, cut, 1, mask, \
                                       1, 0, cidx, ckey, 0, 0, NULL);                       \
            if (out == 0 && !zero)                                                          \
                return mark_body_##SUF(x, lo, hi, vbase, shift, LO, HI, base, cut, 1, mask, \
                                       0, 0, cidx, ckey, 0, 0, NULL);                       \
            return mark_body_##SUF(x, lo, hi, vbase, shift, LO, HI, base, cut, 1, mask,     \
                                   out, zero, cidx, ckey, 0, 0, NULL);                      \
        }                                                                                   \
        if (out == 1 && !zero)                                                              \
            return mark_body_##SUF(x, lo, hi, vbase, 0, LO, HI, base, cut, 0, mask, 1, 0,   \
                                   cidx, ckey, 0, 0, NULL);                                 \
        return mark_body_##SUF(x, lo, hi, vbase, 0, LO, HI, base, cut, 0, mask, out, zero,  \
                               cidx, ckey, 0, 0, NULL);                                     \
    }                                                                                       \
    /* the sampled path's in-place pruning: zero every key below LO (all dropped) */      \
    ATTRS static void zero_below_##SUF##_##NAME(S *x, int64_t lo, int64_t hi, K LO) {      \
        for (int64_t j = lo; j < hi; j++) x[j] = (K)(x[j] & KEYMASK_##SUF) >= LO ? x[j] : (S)0; \
    }                                                                                       \
    ATTRS static int row_##SUF##_##NAME(S *x, int64_t len, int64_t stride, int64_t k,       \
                                        int packed, int zero, uint8_t *mask, int64_t mbase, \
                                        uint64_t *thr, const topk_levels *lv, uint32_t *h,  \
                                        K *keys, int64_t *cidx, uint64_t *ckey) {           \
        if (stride == 1 && !packed && mask)                                                 \
            return row_body_##SUF(x, len, 1, k, 0, zero, mask, mbase, thr, lv, h, keys,     \
                                  cidx, ckey);                                              \
        return row_body_##SUF(x, len, stride, k, packed, zero, mask, mbase, thr, lv, h,     \
                              keys, cidx, ckey);                                            \
    }                                                                                       \

/* FAST4: an optional hand-vectorized 4-group kernel tried first (0 = none). */
#define DEFINE_NM_VARIANT(SUF, S, NAME, ATTRS, FAST4)                                         \
    ATTRS static int nm_##SUF##_##NAME(const S *x, int64_t len, int64_t inner, int32_t n,   \
                                       int32_t m, uint8_t *mask) {                          \
        if (m == 4 && inner == 1) {                                                         \
            int64_t done = 0;                                                               \
            int nan = FAST4(x, len / 4, n, mask, &done);                                    \
            return nan | nm4_body_##SUF(x + 4 * done, len / 4 - done, n, mask + 4 * done);  \
        }                                                                                   \
        if (inner == 1) return nm_body_##SUF(x, len, 1, n, m, mask);                        \
        return nm_body_##SUF(x, len, inner, n, m, mask);                                    \
    }

/* no hand-vectorized kernel: everything goes to the always-inline body */
#define NM4_NONE(x, groups, n, mask, done) (*(done) = 0, 0)
#define RANGE_NONE(x, lo, hi, vbase, LO, HI, mask, cidx, ckey, cap, st, done) (*(done) = 0, 0)

#if TP_HAVE_X86_VARIANTS
#include "simd_x86.h"
/* 2:4-style groups with AVX2: the keep lanes of two groups of 32-bit keys, one group per
 * 128-bit lane. Rotating the lane by r = 1, 2, 3 lines every element up with each of the other
 * three. The other beats it when larger, or equal and at a lower position, which for rotation
 * r is the case in lanes a >= 4 - r. Kept: fewer than n beat it. Same rule as nm4_body, hence
 * the same mask. Keys are below 2^31, so signed compares order them. */
TP_TARGET_AVX2 TP_ALWAYS_INLINE __m256i nm4_keep_avx2(__m256i v, __m256i neg_n) {
    const __m256i tie1 = _mm256_setr_epi32(0, 0, 0, -1, 0, 0, 0, -1);
    const __m256i tie2 = _mm256_setr_epi32(0, 0, -1, -1, 0, 0, -1, -1);
    const __m256i tie3 = _mm256_setr_epi32(0, -1, -1, -1, 0, -1, -1, -1);
    __m256i o1 = _mm256_shuffle_epi32(v, _MM_SHUFFLE(0, 3, 2, 1));
    __m256i o2 = _mm256_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2));
    __m256i o3 = _mm256_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 0, 3));
    __m256i b1 = _mm256_or_si256(_mm256_cmpgt_epi32(o1, v), _mm256_and_si256(_mm256_cmpeq_epi32(o1, v), tie1));
    __m256i b2 = _mm256_or_si256(_mm256_cmpgt_epi32(o2, v), _mm256_and_si256(_mm256_cmpeq_epi32(o2, v), tie2));
    __m256i b3 = _mm256_or_si256(_mm256_cmpgt_epi32(o3, v), _mm256_and_si256(_mm256_cmpeq_epi32(o3, v), tie3));
    __m256i minus_count = _mm256_add_epi32(_mm256_add_epi32(b1, b2), b3);
    return _mm256_cmpgt_epi32(minus_count, neg_n); /* count < n */
}

/* float32 keys, 8 groups (32 elements) per step. Returns 1 on NaN; *done = groups handled. */
TP_TARGET_AVX2 static int nm4_f32_avx2_fast(const uint32_t *x, int64_t groups, int32_t n,
                                            uint8_t *mask, int64_t *done) {
    const __m256i absm = _mm256_set1_epi32(0x7fffffff);
    const __m256i neg_n = _mm256_set1_epi32(-n);
    const __m256i one = _mm256_set1_epi8(1);
    __m256i vmax = _mm256_setzero_si256();
    int64_t steps = groups / 8;
    for (int64_t t = 0; t < steps; t++) {
        __m256i keep[4];
        for (int q = 0; q < 4; q++) {
            __m256i v = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + 32 * t + 8 * q)), absm);
            vmax = _mm256_max_epu32(vmax, v);
            keep[q] = nm4_keep_avx2(v, neg_n);
        }
        __m256i bytes = tp_lanes_to_bytes(keep[0], keep[1], keep[2], keep[3]);
        _mm256_storeu_si256((__m256i *)(mask + 32 * t), _mm256_and_si256(bytes, one));
    }
    /* keys are < 2^31, so a signed compare against Inf's key finds NaN */
    __m256i nan = _mm256_cmpgt_epi32(vmax, _mm256_set1_epi32(0x7f800000));
    *done = steps * 8;
    return !_mm256_testz_si256(nan, nan);
}

/* float16 keys: the same, each 8 keys widened to 32-bit lanes first. */
TP_TARGET_AVX2 static int nm4_f16_avx2_fast(const uint16_t *x, int64_t groups, int32_t n,
                                            uint8_t *mask, int64_t *done) {
    const __m128i absm = _mm_set1_epi16(0x7fff);
    const __m256i neg_n = _mm256_set1_epi32(-n);
    const __m256i one = _mm256_set1_epi8(1);
    __m256i vmax = _mm256_setzero_si256();
    int64_t steps = groups / 8;
    for (int64_t t = 0; t < steps; t++) {
        __m256i keep[4];
        for (int q = 0; q < 4; q++) {
            __m128i h = _mm_and_si128(_mm_loadu_si128((const __m128i *)(x + 32 * t + 8 * q)), absm);
            __m256i v = _mm256_cvtepu16_epi32(h);
            vmax = _mm256_max_epu32(vmax, v);
            keep[q] = nm4_keep_avx2(v, neg_n);
        }
        __m256i bytes = tp_lanes_to_bytes(keep[0], keep[1], keep[2], keep[3]);
        _mm256_storeu_si256((__m256i *)(mask + 32 * t), _mm256_and_si256(bytes, one));
    }
    __m256i nan = _mm256_cmpgt_epi32(vmax, _mm256_set1_epi32(0x7c00));
    *done = steps * 8;
    return !_mm256_testz_si256(nan, nan);
}

/* Keys ahead that the range pass prefetches (4 KB). One thread alone cannot keep enough
 * misses in flight for the hardware prefetcher to fill the memory bus; with this, a 16M
 * float32 mask at k = 10% takes 4.97 ms instead of 5.9 ms on 2 threads (512 to 2048 ahead
 * measure the same; prefetching the mask's lines for writing did not help). */
#define RANGE_AHEAD 1024

/* Shared by the range passes below, inside their loop over 32-key steps (i, c, vbase, cidx,
 * ckey in scope): collect key i + j for each set bit j of `bits` as a candidate. */
#define RANGE_COLLECT(bits, x, ABS, LO)                                                    \
    while (bits) {                                                                         \
        int j = __builtin_ctz(bits);                                                       \
        bits &= bits - 1;                                                                  \
        cidx[c] = vbase + i + j;                                                           \
        ckey[c] = (uint64_t)((x[i + j] & (ABS)) - (LO));                                   \
        c++;                                                                               \
    }
/* ...and after the loop: fold the lanes of vmax (type T) into st->kmax, add the kept count. */
#define RANGE_FINISH(T)                                                                    \
    do {                                                                                   \
        T lanes[32 / sizeof(T)];                                                           \
        _mm256_storeu_si256((__m256i *)lanes, vmax);                                       \
        for (size_t l = 0; l < 32 / sizeof(T); l++)                                        \
            st->kmax = lanes[l] > st->kmax ? lanes[l] : st->kmax;                          \
        st->above += above;                                                                \
        *done = i - lo;                                                                    \
    } while (0)

/* The sampled pass of mark_body (track=1, shift 0, bool mask or none) for float32 keys with
 * AVX2, 32 keys per step: kept = key > HI, candidate = LO <= key <= HI (as key - LO <= span,
 * unsigned), the kept count and the largest key accumulated in vectors. Returns the candidates
 * collected, or -1 when they would pass cap; *done = elements handled (a multiple of 32). */
TP_TARGET_AVX2 static int64_t range_f32_avx2(const uint32_t *x, int64_t lo, int64_t hi,
                                             int64_t vbase, uint32_t LO, uint32_t HI,
                                             uint8_t *mask, int64_t *cidx, uint64_t *ckey,
                                             int64_t cap, mark_stats *st, int64_t *done) {
    const __m256i absm = _mm256_set1_epi32(0x7fffffff);
    /* Keys are below 2^31, so signed compares order them; LO - 1 is -1 when LO is 0. */
    const __m256i vhi = _mm256_set1_epi32((int32_t)HI), vlo1 = _mm256_set1_epi32((int32_t)LO - 1);
    const __m256i one = _mm256_set1_epi8(1);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i vmax = _mm256_setzero_si256();
    int64_t c = 0, i = lo, above = 0;
    /* Keys are packed to bytes two vectors at a time, as soon as they are compared: with all
     * four kept to the end (tp_lanes_to_bytes), the loop ran out of ymm registers and spilled.
     * The loop is bound by issue on CPUs that split 256-bit operations, so it keeps to the
     * fewest vector operations: candidates are (key >= LO) and not (key > HI), taken after
     * the packing, and the kept keys are counted by popcount on the scalar side. */
#define RANGE_PAIR(off, GT, GE)                                                            \
    do {                                                                                   \
        __m256i k0 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i + (off))), absm); \
        __m256i k1 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i + (off) + 8)), absm); \
        vmax = _mm256_max_epi32(vmax, _mm256_max_epi32(k0, k1));                           \
        GT = _mm256_packs_epi32(_mm256_cmpgt_epi32(k0, vhi), _mm256_cmpgt_epi32(k1, vhi));  \
        GE = _mm256_packs_epi32(_mm256_cmpgt_epi32(k0, vlo1), _mm256_cmpgt_epi32(k1, vlo1)); \
    } while (0)
    for (; i + 32 <= hi; i += 32) {
        if (c + 32 > cap) {
            c = -1;
            break;
        }
        _mm_prefetch((const char *)(x + i + RANGE_AHEAD), _MM_HINT_T0);
        _mm_prefetch((const char *)(x + i + RANGE_AHEAD + 16), _MM_HINT_T0);
        __m256i g01, g23, e01, e23;
        RANGE_PAIR(0, g01, e01);
        RANGE_PAIR(16, g23, e23);
        __m256i g = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(g01, g23), order);
        __m256i e = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(e01, e23), order);
        uint32_t gbits = (uint32_t)_mm256_movemask_epi8(g);
        above += __builtin_popcount(gbits);
        if (mask) _mm256_storeu_si256((__m256i *)(mask + i), _mm256_and_si256(g, one));
        uint32_t bits = (uint32_t)_mm256_movemask_epi8(e) & ~gbits;
        RANGE_COLLECT(bits, x, 0x7fffffffu, LO);
    }
#undef RANGE_PAIR
    RANGE_FINISH(uint32_t);
    return c;
}

/* range_f32_avx2 for float16 keys: 32 keys (one cache line) per step in two vectors of 16-bit
 * lanes. Keys are below 2^15, so signed 16-bit compares order them, and LO - 1 is -1 when LO
 * is 0. packs_epi16 interleaves the two vectors' 128-bit halves; one permute restores index
 * order. */
TP_TARGET_AVX2 static int64_t range_f16_avx2(const uint16_t *x, int64_t lo, int64_t hi,
                                             int64_t vbase, uint32_t LO, uint32_t HI,
                                             uint8_t *mask, int64_t *cidx, uint64_t *ckey,
                                             int64_t cap, mark_stats *st, int64_t *done) {
    const __m256i absm = _mm256_set1_epi16(0x7fff);
    const __m256i vhi = _mm256_set1_epi16((int16_t)HI), vlo1 = _mm256_set1_epi16((int16_t)(LO - 1));
    const __m256i one = _mm256_set1_epi8(1);
    __m256i vmax = _mm256_setzero_si256();
    int64_t c = 0, i = lo, above = 0;
    for (; i + 32 <= hi; i += 32) {
        if (c + 32 > cap) {
            c = -1;
            break;
        }
        _mm_prefetch((const char *)(x + i + 2 * RANGE_AHEAD), _MM_HINT_T0); /* the same 4 KB */
        __m256i k0 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i)), absm);
        __m256i k1 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i + 16)), absm);
        vmax = _mm256_max_epi16(vmax, _mm256_max_epi16(k0, k1));
        __m256i g = _mm256_packs_epi16(_mm256_cmpgt_epi16(k0, vhi), _mm256_cmpgt_epi16(k1, vhi));
        __m256i e = _mm256_packs_epi16(_mm256_cmpgt_epi16(k0, vlo1), _mm256_cmpgt_epi16(k1, vlo1));
        g = _mm256_permute4x64_epi64(g, 0xD8);
        e = _mm256_permute4x64_epi64(e, 0xD8);
        uint32_t gbits = (uint32_t)_mm256_movemask_epi8(g);
        above += __builtin_popcount(gbits);
        if (mask) _mm256_storeu_si256((__m256i *)(mask + i), _mm256_and_si256(g, one));
        uint32_t bits = (uint32_t)_mm256_movemask_epi8(e) & ~gbits;
        RANGE_COLLECT(bits, x, 0x7fffu, LO);
    }
    RANGE_FINISH(uint16_t);
    return c;
}

/* range_f32_avx2 for float64 keys: 32 keys (four cache lines) per step in eight vectors of
 * 64-bit lanes. Keys are below 2^63, so signed 64-bit compares order them. The compares are
 * gathered as bits (movemask_pd) and the kept bits spread back to mask bytes: each byte picks
 * its bit's byte of the word (shuffle), then tests its own bit. AVX2 has no 64-bit max; the
 * largest key (for NaN detection) is kept by compare and blend. */
TP_TARGET_AVX2 static int64_t range_f64_avx2(const uint64_t *x, int64_t lo, int64_t hi,
                                             int64_t vbase, uint64_t LO, uint64_t HI,
                                             uint8_t *mask, int64_t *cidx, uint64_t *ckey,
                                             int64_t cap, mark_stats *st, int64_t *done) {
    const __m256i absm = _mm256_set1_epi64x(0x7fffffffffffffffLL);
    const __m256i vhi = _mm256_set1_epi64x((int64_t)HI), vlo1 = _mm256_set1_epi64x((int64_t)LO - 1);
    const __m256i one = _mm256_set1_epi8(1);
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bitsel = _mm256_set1_epi64x((int64_t)0x8040201008040201ULL);
    __m256i vmax = _mm256_setzero_si256();
    int64_t c = 0, i = lo, above = 0;
    for (; i + 32 <= hi; i += 32) {
        if (c + 32 > cap) {
            c = -1;
            break;
        }
        for (int l = 0; l < 32; l += 8) /* the same 4 KB ahead as float32's */
            _mm_prefetch((const char *)(x + i + RANGE_AHEAD / 2 + l), _MM_HINT_T0);
        uint32_t gbits = 0, ebits = 0;
        for (int v = 0; v < 8; v++) {
            __m256i k = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i + 4 * v)), absm);
            vmax = _mm256_blendv_epi8(vmax, k, _mm256_cmpgt_epi64(k, vmax));
            gbits |= (uint32_t)_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(k, vhi))) << (4 * v);
            ebits |= (uint32_t)_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(k, vlo1))) << (4 * v);
        }
        above += __builtin_popcount(gbits);
        if (mask) {
            __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int32_t)gbits), spread);
            b = _mm256_cmpeq_epi8(_mm256_and_si256(b, bitsel), bitsel);
            _mm256_storeu_si256((__m256i *)(mask + i), _mm256_and_si256(b, one));
        }
        uint32_t bits = ebits & ~gbits;
        RANGE_COLLECT(bits, x, 0x7fffffffffffffffULL, LO);
    }
    RANGE_FINISH(uint64_t);
    return c;
}
#endif

#define DEFINE_TOPK_VARIANTS(SUF, S, K)                                                       \
    DEFINE_TOPK_VARIANT(SUF, S, K, scalar, TP_NO_VECTORIZE, RANGE_NONE)                     \
    DEFINE_TOPK_VARIANT(SUF, S, K, baseline, , RANGE_NONE)                                  \
    DEFINE_NM_VARIANT(SUF, S, scalar, TP_NO_VECTORIZE, NM4_NONE)                            \
    DEFINE_NM_VARIANT(SUF, S, baseline, , NM4_NONE)

DEFINE_TOPK_VARIANTS(f16, uint16_t, uint32_t)
DEFINE_TOPK_VARIANTS(f32, uint32_t, uint32_t)
DEFINE_TOPK_VARIANTS(f64, uint64_t, uint64_t)
#if TP_HAVE_X86_VARIANTS
DEFINE_TOPK_VARIANT(f16, uint16_t, uint32_t, avx2, TP_TARGET_AVX2, range_f16_avx2)
DEFINE_TOPK_VARIANT(f16, uint16_t, uint32_t, avx512, TP_TARGET_AVX512, range_f16_avx2)
DEFINE_TOPK_VARIANT(f32, uint32_t, uint32_t, avx2, TP_TARGET_AVX2, range_f32_avx2)
DEFINE_TOPK_VARIANT(f32, uint32_t, uint32_t, avx512, TP_TARGET_AVX512, range_f32_avx2)
DEFINE_TOPK_VARIANT(f64, uint64_t, uint64_t, avx2, TP_TARGET_AVX2, range_f64_avx2)
DEFINE_TOPK_VARIANT(f64, uint64_t, uint64_t, avx512, TP_TARGET_AVX512, range_f64_avx2)
DEFINE_NM_VARIANT(f16, uint16_t, avx2, TP_TARGET_AVX2, nm4_f16_avx2_fast)
DEFINE_NM_VARIANT(f16, uint16_t, avx512, TP_TARGET_AVX512, nm4_f16_avx2_fast)
DEFINE_NM_VARIANT(f32, uint32_t, avx2, TP_TARGET_AVX2, nm4_f32_avx2_fast)
DEFINE_NM_VARIANT(f32, uint32_t, avx512, TP_TARGET_AVX512, nm4_f32_avx2_fast)
DEFINE_NM_VARIANT(f64, uint64_t, avx2, TP_TARGET_AVX2, NM4_NONE)
DEFINE_NM_VARIANT(f64, uint64_t, avx512, TP_TARGET_AVX512, NM4_NONE)
#endif

#if TP_HAVE_X86_VARIANTS
#define PICK(SUF, FN, isa)                                                                    \
    ((isa) == TP_ISA_SCALAR ? FN##_##SUF##_scalar                                           \
     : (isa) == TP_ISA_AVX2 ? FN##_##SUF##_avx2                                             \
     : (isa) == TP_ISA_AVX512 ? FN##_##SUF##_avx512                                         \
                              : FN##_##SUF##_baseline)
#else
#define PICK(SUF, FN, isa) ((isa) == TP_ISA_SCALAR ? FN##_##SUF##_scalar : FN##_##SUF##_baseline)
#endif

/* ---------------------------------------------------------------------------------------- */
/* Whole-array (and multi-array) selection.                                                  */

static const topk_levels *levels_of(int32_t dtype) {
    return dtype == TP_FLOAT32 ? &LEVELS_f32 : dtype == TP_FLOAT64 ? &LEVELS_f64 : &LEVELS_f16;
}

static int valid_dtype(int32_t dtype) {
    return dtype == TP_FLOAT32 || dtype == TP_FLOAT64 || dtype == TP_TOPK_FLOAT16;
}

static int64_t units_for(int64_t total, int threads) {
    int64_t units = (total + TOPK_UNIT_MAX - 1) / TOPK_UNIT_MAX;
    return units > threads ? units : threads;
}

static int64_t select_ws_bytes(int32_t dtype, int64_t units, int64_t cap) {
    int64_t b = (int64_t)1 << levels_of(dtype)->bits[0];
    return units * (b * 4 + (int64_t)sizeof(topk_range) + 16) + cap * 32 + 64;
}

int64_t tp_topk_workspace_bytes(int32_t dtype, int64_t total, int64_t cand_cap) {
    if (!valid_dtype(dtype) || total < 0 || cand_cap < 0) return -1;
    int threads = tp_threads_for(total, TOPK_MIN_PER_THREAD);
    return select_ws_bytes(dtype, units_for(total, threads), cand_cap);
}

/* The virtual index p moved down to a multiple of TOPK_ALIGN within its segment. */
static int64_t align_split(const tp_topk_segment *segs, int64_t count, int64_t p) {
    int64_t off = 0;
    for (int64_t s = 0; s < count; s++) {
        int64_t n = segs[s].numel;
        if (p < off + n) return off + ((p - off) & ~(int64_t)(TOPK_ALIGN - 1));
        off += n;
    }
    return off;
}

/* Iterate the pieces of virtual range [lo, hi): BODY sees s (segment), a, b (segment-relative
 * bounds) and off (virtual index of the segment's element 0). */
#define FOR_PIECES(segs, count, lo, hi, BODY)                                                 \
    do {                                                                                    \
        int64_t off_ = 0;                                                                   \
        for (int64_t s = 0; s < (count) && off_ < (hi); s++) {                              \
            int64_t n_ = (segs)[s].numel;                                                   \
            int64_t a = (lo) > off_ ? (lo) - off_ : 0;                                      \
            int64_t b = (hi) - off_ < n_ ? (hi) - off_ : n_;                                \
            int64_t off = off_;                                                             \
            (void)off;                                                                      \
            if (a < b) { BODY; }                                                            \
            off_ += n_;                                                                     \
        }                                                                                   \
    } while (0)

/* ---- the sampled path -------------------------------------------------------------------
 * The histogram pass costs as much as the mask pass. A sample of the data (up to 8192 groups
 * of 16 neighbours, a cache line each, at jittered positions; at most 1 key in 32) estimates
 * where the k-th key lies; its sorted keys give a range [LO, HI] that holds the k-th key with high probability.
 * Then ONE pass over the data writes the mask for everything outside the range, counts the
 * keys above it and collects the (few) keys inside; the exact selection runs on those in cache.
 * When the range missed (too many or too few above, or more candidates than the workspace
 * takes: rare, e.g. data concentrated on a few values) the histogram path redoes the work, so
 * the result never depends on the sample, only the time does. */
/* Below these sizes the histogram path is faster: its passes run in cache. With the
 * hand-vectorized sampled pass (range_*_avx2) the sampled path wins from 96K keys (2 threads,
 * 10% masks, against the histogram path: float32 128K keys 1.05e9 -> 1.5e9 elements/s,
 * float16 256K 1.2e9 -> 2.6e9, float64 128K 0.56e9 -> 1.1e9); with the compiled generic pass
 * only near 512K (float32, portable build: 256K 1.32e9 histogram, 1.06e9 sampled). */
#define TOPK_SAMPLE_MIN_VECTOR ((int64_t)3 << 15)
#define TOPK_SAMPLE_MIN ((int64_t)1 << 19)
/* A bigger sample costs a little more and narrows the range: fewer candidates to collect,
 * select and scatter. 8192 groups (128K keys) halved the time of those steps against 2048 on
 * 16M float32 (10% and 50% masks 1.95e9 / 1.48e9 -> 2.35e9 / 2.1e9 elements/s). */
#define TOPK_SAMPLE_GROUPS 8192
#define TOPK_SAMPLE_GROUP 16
#define TOPK_SAMPLE_AHEAD 16 /* draws between a group's prefetch and its read */
static double sample_z = 3.5;              /* half-width of the range in standard deviations */
static int64_t sample_misses = 0;          /* times the histogram path had to redo the work */

double tp_topk_sample_width(double z) {
    double before = sample_z;
    sample_z = z;
    return before;
}

int64_t tp_topk_sample_misses(void) { return __atomic_load_n(&sample_misses, __ATOMIC_RELAXED); }

/* LSD radix sort of n keys by their bits [low, high) (stable: the order of key >> low),
 * ascending, 8-bit digits; tmp holds n keys. The keys are cut in 4 quarters, each with its own
 * counts and offsets, worked in one interleaved loop: a run of equal digits (the exponent's, in
 * real data) then makes 4 independent chains of counter updates instead of one, each update
 * waiting for the previous. Digits every key shares are skipped. */
static void sort_keys(uint64_t *a, uint64_t *tmp, int64_t n, int low, int high) {
    uint64_t *src = a, *dst = tmp;
    const int64_t qn = n / 4; /* quarters [0, qn), [qn, 2qn), [2qn, 3qn), [3qn, n) */
    for (int shift = low; shift < high; shift += 8) {
#define DIGIT(v) (((v) >> shift) & 255)
        uint32_t h[4][256];
        memset(h, 0, sizeof h);
        for (int64_t i = 0; i < qn; i++) {
            h[0][DIGIT(src[i])]++;
            h[1][DIGIT(src[qn + i])]++;
            h[2][DIGIT(src[2 * qn + i])]++;
            h[3][DIGIT(src[3 * qn + i])]++;
        }
        for (int64_t i = 4 * qn; i < n; i++) h[3][DIGIT(src[i])]++;
        uint64_t d0 = DIGIT(src[0]);
        if ((int64_t)h[0][d0] + h[1][d0] + h[2][d0] + h[3][d0] == n) continue;
        uint32_t acc = 0; /* offsets: digit by digit, quarters in order within a digit */
        for (int d = 0; d < 256; d++)
            for (int q = 0; q < 4; q++) {
                uint32_t c = h[q][d];
                h[q][d] = acc;
                acc += c;
            }
        for (int64_t i = 0; i < qn; i++) {
            uint64_t v0 = src[i], v1 = src[qn + i], v2 = src[2 * qn + i], v3 = src[3 * qn + i];
            dst[h[0][DIGIT(v0)]++] = v0;
            dst[h[1][DIGIT(v1)]++] = v1;
            dst[h[2][DIGIT(v2)]++] = v2;
            dst[h[3][DIGIT(v3)]++] = v3;
        }
        for (int64_t i = 4 * qn; i < n; i++) dst[h[3][DIGIT(src[i])]++] = src[i];
#undef DIGIT
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, (size_t)n * sizeof *a);
}

/* An offset in [0, range) for draw j: frac(j * golden ratio) * range, a low-discrepancy
 * sequence (one multiply, no division), so sample positions never line up with a period of
 * the data. */
static int64_t jitter(uint64_t j, int64_t range) {
    uint32_t frac = (uint32_t)(j * 2654435769u); /* 2^32 / golden ratio */
    return (int64_t)(((uint64_t)frac * (uint64_t)range) >> 32);
}

static int bit_length(uint64_t v) { return v ? 64 - __builtin_clzll(v) : 0; }

/* Walking down a histogram of digits from `top` (no key's digit is higher): the digits that
 * hold the keys of descending ranks r1 <= r2 (0 = the largest key) into *d1 >= *d2, and the
 * number of keys in digits above *d1 into *above_d1. r2 must be below the histogram's total. */
static void digits_of_ranks(const uint32_t *h, int64_t top, int64_t r1, int64_t r2, uint64_t *d1,
                            uint64_t *d2, int64_t *above_d1) {
    int64_t above = 0;
    int found = 0;
    *d1 = *d2 = 0;
    *above_d1 = 0;
    for (int64_t dg = top; dg >= 0; dg--) {
        if (!found && above + h[dg] > r1) {
            *d1 = (uint64_t)dg;
            *above_d1 = above;
            found = 1;
        }
        if (above + h[dg] > r2) {
            *d2 = (uint64_t)dg;
            return;
        }
        above += h[dg];
    }
}

#define SAMPLE_RANGE_THREADS 64

/* What the threads of sample_range share. */
typedef struct {
    const uint64_t *keys;
    uint64_t *tmp;
    int64_t s, a, b;
    int bits;
    uint32_t h[2048];
    uint64_t kmax, da, db; /* da, db: the digits of ascending ranks a and b */
    int64_t above_db;
    int parts;
    int64_t part_end[SAMPLE_RANGE_THREADS];
} sample_share;

/* Thread t of nt's part of sample_range's three passes over the sample: the largest key, the
 * digit histogram, and the compaction of the keys near the ranks. With nt > 1 every thread of
 * a team calls it (its barriers bind to that team); with nt == 1 it runs alone,
 * with no barrier or lock: the per-slice path calls it from inside its own team, whose
 * barriers it must not join, and a named critical section is one lock for the whole process. */
static void sample_range_part(sample_share *sh, int t, int nt) {
    const uint64_t *keys = sh->keys;
    const int64_t from = sh->s * t / nt, to = sh->s * (t + 1) / nt, nb = (int64_t)1 << sh->bits;
    uint64_t mine_max = 0;
    for (int64_t i = from; i < to; i++) mine_max = keys[i] > mine_max ? keys[i] : mine_max;
    if (nt == 1) {
        sh->kmax = mine_max;
    } else {
#ifdef _OPENMP
#pragma omp critical(tp_topk_sample_range)
#endif
        sh->kmax = mine_max > sh->kmax ? mine_max : sh->kmax;
#ifdef _OPENMP
#pragma omp barrier
#endif
    }
    const int shift = bit_length(sh->kmax) > sh->bits ? bit_length(sh->kmax) - sh->bits : 0;
    uint32_t mine[2048], *counts = nt == 1 ? sh->h : mine;
    if (nt > 1) memset(mine, 0, sizeof(uint32_t) * (size_t)nb);
    for (int64_t i = from; i < to; i++) counts[keys[i] >> shift]++;
    if (nt > 1) {
#ifdef _OPENMP
#pragma omp critical(tp_topk_sample_range)
#endif
        for (int64_t g = 0; g < nb; g++) sh->h[g] += mine[g];
#ifdef _OPENMP
#pragma omp barrier
#endif
    }
    if (t == 0)
        digits_of_ranks(sh->h, (int64_t)(sh->kmax >> shift), sh->s - 1 - sh->b, sh->s - 1 - sh->a,
                        &sh->db, &sh->da, &sh->above_db);
    if (nt > 1) {
#ifdef _OPENMP
#pragma omp barrier
#endif
    }
    /* branch-free compaction of the keys whose digit lies in [da, db], each thread's part to
     * the start of its own stretch of tmp */
    const uint64_t da = sh->da, width = sh->db - sh->da;
    int64_t w = from;
    for (int64_t i = from; i < to; i++) {
        sh->tmp[w] = keys[i];
        w += (keys[i] >> shift) - da <= width;
    }
    sh->part_end[t] = w;
    if (t == 0) sh->parts = nt;
}

/* The key range [*lo, *hi] that holds the k-th largest of `total` keys with high probability,
 * from s sample keys (reordered; tmp holds s keys): the sample's keys of ascending ranks r - d
 * and r + d, where r is the k-th's expected rank in the sample and d is sample_z standard
 * deviations of it (binomial) plus `margin` (for neighbours within a group being alike). Only
 * the keys near those ranks are sorted: a histogram of the top `bits` (<= 11) significant bits
 * picks them out (a full radix sort of the sample costs more than the selection it serves:
 * its skewed top digits chain every counter increment through the previous one). The passes
 * over the sample share `threads` threads: on one they took 0.3 ms of a 16M-key mask. */
static void sample_range(uint64_t *keys, uint64_t *tmp, int64_t s, int64_t total, int64_t k,
                         uint64_t top, int bits, int64_t margin, int threads, uint64_t *lo,
                         uint64_t *hi) {
    double p = (double)k / (double)total;
    int64_t r = (int64_t)((double)(total - k) / (double)total * (double)s);
    int64_t d = (int64_t)(sample_z * sqrt((double)s * p * (1.0 - p))) + margin;
    int64_t a = r - d < 0 ? 0 : r - d, b = r + d >= s ? s - 1 : r + d;
    sample_share sh;
    sh.keys = keys;
    sh.tmp = tmp;
    sh.s = s;
    sh.a = a;
    sh.b = b;
    sh.bits = bits;
    memset(sh.h, 0, sizeof(uint32_t) * ((size_t)1 << bits));
    sh.kmax = sh.da = sh.db = 0;
    sh.above_db = 0;
    sh.parts = 1;
    if (threads > 1) {
        if (threads > SAMPLE_RANGE_THREADS) threads = SAMPLE_RANGE_THREADS;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
        sample_range_part(&sh, tp_team_id(), tp_team_size());
    } else {
        sample_range_part(&sh, 0, 1);
    }
    /* the parts side by side, in thread order (so in sample order); they are short */
    int64_t m = 0;
    for (int t = 0; t < sh.parts; t++) {
        const int64_t from = s * t / sh.parts;
        memmove(tmp + m, tmp + from, (size_t)(sh.part_end[t] - from) * sizeof *tmp);
        m += sh.part_end[t] - from;
    }
    const int64_t above_db = sh.above_db;
    const int64_t base = s - above_db - m; /* the ascending rank of tmp's smallest key */
    /* the range may be wider than the sample says, never narrower: sort on the top 16 bits
     * of those in which these keys differ, then round the ends outwards over the bits left out */
    uint64_t vary = 0;
    for (int64_t i = 0; i < m; i++) vary |= tmp[i] ^ tmp[0];
    int high = bit_length(vary), low = high > 16 ? high - 16 : 0;
    uint64_t rest = ((uint64_t)1 << low) - 1;
    sort_keys(tmp, keys, m, low, high);
    *lo = r - d < 0 ? 0 : tmp[a - base] & ~rest;
    *hi = r + d >= s ? top : tmp[b - base] | rest;
}

/* Step 6 of both paths: decide the collected candidates (index-ordered; unit u's sit at
 * first[u]..last[u] - 1) and write them into the masks, each unit its own, so units never
 * write the same byte. Candidate keys are stored relative to the range's base: trel is the
 * threshold relative to it. */
#define DEFINE_SCATTER(SUF, S, K)                                                             \
    static void scatter_##SUF(const tp_topk_segment *segs, int64_t units,                   \
                              const int64_t *first, const int64_t *last,                    \
                              const int64_t *cidx, const uint64_t *ckey, uint64_t trel,     \
                              int64_t cut, int want_mask, int packed, int zero, int threads) { \
        (void)threads;                                                                      \
        TOPK_PRAGMA("omp parallel for num_threads(threads) schedule(static) if(threads > 1)") \
        for (int64_t u = 0; u < units; u++) {                                               \
            const int64_t end = last[u];                                                    \
            int64_t s = 0, off = 0;                                                         \
            for (int64_t i = first[u]; i < end; i++) {                                      \
                int64_t id = cidx[i];                                                       \
                while (id >= off + segs[s].numel) off += segs[s++].numel;                   \
                int64_t j = id - off;                                                       \
                /* the candidates are spread over the whole mask, about one per cache line: \
                 * fetch the line of a later one while this one is written */              \
                if (want_mask && i + 16 < end && cidx[i + 16] - off < segs[s].numel)        \
                    __builtin_prefetch((uint8_t *)segs[s].mask +                            \
                                           ((cidx[i + 16] - off) >> (packed ? 3 : 0)), 1);  \
                int keep = ckey[i] > trel || (ckey[i] == trel && id <= cut);                \
                if (keep) {                                                                 \
                    if (want_mask) {                                                        \
                        uint8_t *mk = (uint8_t *)segs[s].mask;                              \
                        if (packed)                                                         \
                            mk[j >> 3] |= (uint8_t)(0x80u >> (j & 7));                      \
                        else                                                                \
                            mk[j] = 1;                                                      \
                    }                                                                       \
                } else if (zero) {                                                          \
                    ((S *)segs[s].data)[j] = 0;                                             \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
                                                                                            \
    /* `groups` groups of TOPK_SAMPLE_GROUP neighbours (consecutive in the concatenation),   \
     * one at a jittered position in each of `groups` equal strata of it (strata, so every  \
     * part of the data is seen; jitter, so a period in the data cannot line up with the    \
     * strata). The groups are far apart, each a cache (and TLB) miss: the threads share   \
     * them, and each fetches the group TOPK_SAMPLE_AHEAD draws on, with a cursor of its    \
     * own, so that many misses are in flight instead of one (16M float32: 0.95 ms on one  \
     * thread without the prefetch, 0.57 ms with it, 0.28 ms on two threads). */           \
    static int64_t sample_##SUF(const tp_topk_segment *segs, int64_t total, int64_t groups, \
                                uint64_t *out, int threads) {                               \
        const int64_t stride = total / groups; /* > TOPK_SAMPLE_GROUP by the caller */      \
        const int64_t span = stride - TOPK_SAMPLE_GROUP + 1; /* so p + GROUP <= total */    \
        (void)threads;                                                                      \
        TOPK_PRAGMA("omp parallel num_threads(threads) if(threads > 1)")                    \
        {                                                                                   \
            int64_t s = 0, off = 0, ps = 0, poff = 0;                                       \
            TOPK_PRAGMA("omp for schedule(static)")                                         \
            for (int64_t g = 0; g < groups; g++) {                                          \
                if (g + TOPK_SAMPLE_AHEAD < groups) {                                       \
                    int64_t ga = g + TOPK_SAMPLE_AHEAD;                                     \
                    int64_t pa = ga * stride + jitter((uint64_t)ga, span);                  \
                    while (pa >= poff + segs[ps].numel) poff += segs[ps++].numel;           \
                    const S *xa = (const S *)segs[ps].data + (pa - poff);                   \
                    __builtin_prefetch(xa);                                                 \
                    __builtin_prefetch(xa + TOPK_SAMPLE_GROUP - 1);                         \
                }                                                                           \
                int64_t p = g * stride + jitter((uint64_t)g, span);                         \
                while (p >= off + segs[s].numel) off += segs[s++].numel;                    \
                uint64_t *o = out + g * TOPK_SAMPLE_GROUP;                                  \
                if (p - off + TOPK_SAMPLE_GROUP <= segs[s].numel) {                         \
                    const S *x = (const S *)segs[s].data + (p - off);                       \
                    for (int64_t j = 0; j < TOPK_SAMPLE_GROUP; j++)                         \
                        o[j] = (K)(x[j] & KEYMASK_##SUF);                                   \
                } else { /* the group runs on into later segments */                        \
                    int64_t gs = s, goff = off;                                             \
                    for (int64_t j = 0; j < TOPK_SAMPLE_GROUP; j++, p++) {                  \
                        while (p >= goff + segs[gs].numel) goff += segs[gs++].numel;        \
                        o[j] = (K)(((const S *)segs[gs].data)[p - goff] & KEYMASK_##SUF);   \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        return groups * TOPK_SAMPLE_GROUP;                                                  \
    }
DEFINE_SCATTER(f16, uint16_t, uint32_t)
DEFINE_SCATTER(f32, uint32_t, uint32_t)
DEFINE_SCATTER(f64, uint64_t, uint64_t)

/* The sampled path (see above) with the histogram path's workspace: TP_OK, TP_ERR_NONFINITE,
 * or 1 when the range missed and the histogram path must run. */
#define DEFINE_SAMPLED(SUF, S, K)                                                             \
    static int sampled_##SUF(const tp_topk_segment *segs, int64_t count, int64_t total,     \
                             int64_t k, int want_mask, int packed, int zero,                \
                             const topk_range *ranges,                                      \
                             int64_t units, int threads, mark_stats *stats, int64_t *offsets, \
                             int64_t *ends,                                                 \
                             int64_t *cidx, uint64_t *ckey, int64_t *cidx2, uint64_t *ckey2, \
                             int64_t cap, uint64_t *threshold_key, int isa) {               \
        int64_t groups = total / 512 < TOPK_SAMPLE_GROUPS ? total / 512 : TOPK_SAMPLE_GROUPS; \
        if (groups * TOPK_SAMPLE_GROUP > cap) groups = cap / TOPK_SAMPLE_GROUP;             \
        if (groups < 64) return 1;                                                          \
        uint64_t *sample = (uint64_t *)cidx2;                                               \
        int64_t ns = sample_##SUF(segs, total, groups, sample, threads);                    \
        uint64_t lo64, hi64;                                                                \
        sample_range(sample, ckey2, ns, total, k, KEYMASK_##SUF, 11, 2 * TOPK_SAMPLE_GROUP, \
                     threads,                                                               \
                     &lo64, &hi64);                                                         \
        const K LO = (K)lo64, HI = (K)hi64;                                                 \
        const int64_t per_unit = cap / units;                                               \
        (void)threads;                                                                      \
        TOPK_PRAGMA("omp parallel for num_threads(threads) schedule(static) if(threads > 1)") \
        for (int64_t u = 0; u < units; u++) {                                               \
            mark_stats *st = stats + u;                                                     \
            int64_t w = 0, *ui = cidx + u * per_unit;                                       \
            uint64_t *uk = ckey + u * per_unit;                                             \
            st->above = 0;                                                                  \
            st->kmax = 0;                                                                   \
            FOR_PIECES(segs, count, ranges[u].lo, ranges[u].hi,              \
                       if (w >= 0) {                                                        \
                           int64_t c = PICK(SUF, mark, isa)(                                \
                               (S *)segs[s].data, a, b, off, 0, LO, HI, LO, 0, 1,           \
                               want_mask ? (uint8_t *)segs[s].mask : NULL, packed, 0,       \
                               ui + w, uk + w, per_unit - w, st);                           \
                           w = c < 0 ? -1 : w + c;                                          \
                       });                                                                  \
            offsets[u] = w;                                                                 \
        }                                                                                   \
        int64_t above = 0, found = 0;                                                       \
        for (int64_t u = 0; u < units; u++) {                                               \
            if (stats[u].kmax > INFKEY_##SUF) return TP_ERR_NONFINITE;                      \
            if (offsets[u] < 0) return 1;                                                   \
            above += stats[u].above;                                                        \
            found += offsets[u];                                                            \
        }                                                                                   \
        int64_t need = k - above;                                                           \
        if (need < 1 || need > found) return 1;                                             \
        /* The selection's first digit runs per unit, in parallel: each unit counts its     \
         * candidates' top digits, then copies those in the k-th key's bucket to their place \
         * in cidx2 (units in order, so index order holds). This replaced gathering all the  \
         * units' candidates into one list, a serial copy of every candidate. */             \
        const int shift = bit_length((uint64_t)(K)(HI - LO));                               \
        const int dshift = shift > 8 ? shift - 8 : 0;                                       \
        uint32_t *digits = (uint32_t *)(stats + units); /* units x 256, histogram area */   \
        for (int64_t u = 0; u < units; u++) {                                               \
            ends[u] = u * per_unit + offsets[u];                                            \
            offsets[u] = u * per_unit;                                                      \
        }                                                                                   \
        TOPK_PRAGMA("omp parallel for num_threads(threads) schedule(static) if(threads > 1)") \
        for (int64_t u = 0; u < units; u++) {                                               \
            uint32_t *h = digits + 256 * u;                                                 \
            memset(h, 0, 256 * sizeof *h);                                                  \
            for (int64_t i = offsets[u]; i < ends[u]; i++) h[ckey[i] >> dshift]++;          \
        }                                                                                   \
        int64_t bucket = 255, in_bucket = 0;                                                \
        for (;; bucket--) {                                                                 \
            in_bucket = 0;                                                                  \
            for (int64_t u = 0; u < units; u++) in_bucket += digits[256 * u + bucket];      \
            if (in_bucket >= need || bucket == 0) break;                                    \
            need -= in_bucket;                                                              \
        }                                                                                   \
        TOPK_PRAGMA("omp parallel for num_threads(threads) schedule(static) if(threads > 1)") \
        for (int64_t u = 0; u < units; u++) {                                               \
            int64_t w = 0;                                                                  \
            for (int64_t v = 0; v < u; v++) w += digits[256 * v + bucket];                  \
            for (int64_t i = offsets[u]; i < ends[u]; i++) {                                \
                if ((int64_t)(ckey[i] >> dshift) == bucket) { /* a few in 256: well predicted */ \
                    cidx2[w] = cidx[i];                                                     \
                    ckey2[w++] = ckey[i];                                                   \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        uint64_t trel;                                                                      \
        int64_t cut;                                                                        \
        select_candidates(cidx2, ckey2, in_bucket, need, dshift, cidx2, ckey2, &trel, &cut); \
        *threshold_key = (uint64_t)LO + trel;                                               \
        if (zero) {                                                                         \
            TOPK_PRAGMA("omp parallel for num_threads(threads) schedule(static) if(threads > 1)") \
            for (int64_t u = 0; u < units; u++) {                                           \
                FOR_PIECES(segs, count, ranges[u].lo, ranges[u].hi,                         \
                           PICK(SUF, zero_below, isa)((S *)segs[s].data, a, b, LO));         \
            }                                                                               \
        }                                                                                   \
        if (want_mask || zero)                                                              \
            scatter_##SUF(segs, units, offsets, ends, cidx, ckey, trel, cut, want_mask,     \
                          packed, zero, threads);                                           \
        return TP_OK;                                                                       \
    }
DEFINE_SAMPLED(f16, uint16_t, uint32_t)
DEFINE_SAMPLED(f32, uint32_t, uint32_t)
DEFINE_SAMPLED(f64, uint64_t, uint64_t)

#define DEFINE_SELECT(SUF, S, K)                                                              \
    static int select_##SUF(const tp_topk_segment *segs, int64_t count, int64_t total,      \
                            int64_t k, int32_t flags, char *ws, int64_t ws_bytes, int64_t cap, \
                            uint64_t *threshold_key, int isa) {                             \
        const topk_levels *lv = &LEVELS_##SUF;                                              \
        const int64_t B = (int64_t)1 << lv->bits[0];                                        \
        int threads = tp_threads_for(total, TOPK_MIN_PER_THREAD);                           \
        int64_t units = units_for(total, threads);                                          \
        while (threads > 1 && select_ws_bytes(TP_##SUF##_CODE, units, cap) > ws_bytes)      \
            units = units_for(total, --threads);                                            \
        TP_RETURN_IF(select_ws_bytes(TP_##SUF##_CODE, units, cap) > ws_bytes, TP_ERR_BUFFER); \
        /* carve the workspace: histograms, ranges, the units' candidate spans (offsets and \
         * ends), two candidate areas (8-aligned) */                                        \
        uint32_t *hist = (uint32_t *)ws;                                                    \
        topk_range *ranges = (topk_range *)(ws + units * B * 4);                            \
        int64_t *offsets = (int64_t *)(ranges + units);                                     \
        int64_t *ends = offsets + units;                                                    \
        int64_t *cidx = ends + units;                                                       \
        uint64_t *ckey = (uint64_t *)(cidx + cap);                                          \
        int64_t *cidx2 = (int64_t *)(ckey + cap);                                           \
        uint64_t *ckey2 = (uint64_t *)(cidx2 + cap);                                        \
        for (int64_t u = 0; u < units; u++) {                                               \
            int64_t lo = align_split(segs, count, (int64_t)((double)total * u / units));    \
            int64_t hi = u == units - 1                                                     \
                             ? total                                                        \
                             : align_split(segs, count, (int64_t)((double)total * (u + 1) / units)); \
            ranges[u].lo = lo;                                                              \
            ranges[u].hi = hi < lo ? lo : hi;                                               \
        }                                                                                   \
        const int packed = (flags & TP_TOPK_PACKED) != 0, zero = (flags & TP_TOPK_ZERO) != 0; \
        const int want_mask = !(flags & TP_TOPK_NO_MASK);                                   \
        (void)threads;                                                                      \
        const int64_t sample_min = isa == TP_ISA_AVX2 || isa == TP_ISA_AVX512                 \
                                       ? TOPK_SAMPLE_MIN_VECTOR : TOPK_SAMPLE_MIN;           \
        if (k > 0 && k < total && total >= sample_min && sample_z >= 0) {                    \
            int status = sampled_##SUF(segs, count, total, k, want_mask, packed, zero, ranges, units, \
                                       threads, (mark_stats *)hist, offsets, ends, cidx, ckey, \
                                       cidx2, ckey2, cap, threshold_key, isa);              \
            if (status != 1) return status;                                                 \
            __atomic_fetch_add(&sample_misses, 1, __ATOMIC_RELAXED);                        \
        }                                                                                   \
        /* 1-3: histogram levels until the bucket of the k-th key fits the candidate space */ \
        K P = 0;                                                                            \
        int64_t need = k, bucket = total;                                                   \
        int L = 0, nan = 0;                                                                 \
        for (L = 0; L < lv->levels; L++) {                                                  \
            const int shift = lv->shift[L], bits = lv->bits[L];                             \
            const int64_t nb = (int64_t)1 << bits;                                          \
            const int restricted = L > 0, pshift = shift + bits;                            \
            const K prefix = P, dmask = (K)(nb - 1);                                        \
            TOPK_PRAGMA("omp parallel for num_threads(threads) schedule(static) reduction(|:nan) if(threads > 1)") \
            for (int64_t u = 0; u < units; u++) {                                           \
                uint32_t *h = hist + u * B;                                                 \
                memset(h, 0, sizeof(uint32_t) * (size_t)nb);                                \
                FOR_PIECES(segs, count, ranges[u].lo, ranges[u].hi,                         \
                           nan |= hist_piece_##SUF((const S *)segs[s].data + a, b - a,      \
                                                   shift, dmask, restricted, pshift,        \
                                                   prefix, h));                             \
            }                                                                               \
            TP_RETURN_IF(nan, TP_ERR_NONFINITE);                                            \
            if (k == 0) break;                                                              \
            int64_t above = 0, d = nb - 1, c = 0;                                           \
            for (; d >= 0; d--) {                                                           \
                c = 0;                                                                      \
                for (int64_t u = 0; u < units; u++) c += hist[u * B + d];                   \
                if (above + c >= need) break;                                               \
                above += c;                                                                 \
            }                                                                               \
            need -= above;                                                                  \
            P = (K)((P << bits) | (K)d);                                                    \
            bucket = c;                                                                     \
            for (int64_t u = 0, acc = 0; u < units; u++) {                                  \
                offsets[u] = acc;                                                           \
                acc += hist[u * B + d];                                                     \
            }                                                                               \
            if (shift == 0 || bucket <= cap) break;                                         \
        }                                                                                   \
        K T;                                                                                \
        int64_t cut;                                                                        \
        int shift = k == 0 ? 0 : lv->shift[L];                                              \
        if (k == 0) {                                                                       \
            T = (K)~(K)0 >> 1; /* no key (but NaN) reaches it: nothing kept */              \
            cut = -1;                                                                       \
        } else if (shift == 0) {                                                            \
            T = P;                                                                          \
            cut = need == bucket ? total : find_cut_##SUF(segs, count, T, need);            \
        } else {                                                                            \
            /* 4: write the mask outside the bucket and collect the bucket */               \
            const K PP = P;                                                                 \
            const int sh = shift;                                                           \
            TOPK_PRAGMA("omp parallel for num_threads(threads) schedule(static) if(threads > 1)") \
            for (int64_t u = 0; u < units; u++) {                                           \
                int64_t w = offsets[u];                                                     \
                FOR_PIECES(segs, count, ranges[u].lo, ranges[u].hi,                         \
                           w += PICK(SUF, mark, isa)((S *)segs[s].data, a, b, off, sh, PP, \
                                                     PP, 0, 0, 1,                           \
                                                     want_mask ? (uint8_t *)segs[s].mask : NULL, \
                                                     packed, zero, cidx + w, ckey + w, 0,   \
                                                     NULL));                                \
            }                                                                               \
            /* 5: the exact threshold among the candidates */                               \
            uint64_t t64;                                                                   \
            select_candidates(cidx, ckey, bucket, need, shift, cidx2, ckey2, &t64, &cut);   \
            T = (K)t64;                                                                     \
            *threshold_key = (uint64_t)T;                                                   \
            if (!want_mask && !zero) return TP_OK;                                          \
            /* 6: scatter the kept candidates */                                            \
            for (int64_t u = 0; u < units; u++) ends[u] = u + 1 < units ? offsets[u + 1] : bucket; \
            scatter_##SUF(segs, units, offsets, ends, cidx, ckey, T, cut, want_mask, packed, \
                          zero, threads);                                                   \
            return TP_OK;                                                                   \
        }                                                                                   \
        *threshold_key = k == 0 ? 0 : (uint64_t)T;                                          \
        if (!want_mask && !zero) return TP_OK;                                              \
        /* the rule pass: keep key > T, and key == T up to index cut */                     \
        const K TT = T;                                                                     \
        const int64_t CUT = cut;                                                            \
        TOPK_PRAGMA("omp parallel for num_threads(threads) schedule(static) if(threads > 1)")   \
        for (int64_t u = 0; u < units; u++) {                                               \
            FOR_PIECES(segs, count, ranges[u].lo, ranges[u].hi,                             \
                       PICK(SUF, mark, isa)((S *)segs[s].data, a, b, off, 0, TT, TT, 0, CUT,  \
                                            0, want_mask ? (uint8_t *)segs[s].mask : NULL,  \
                                            packed, zero, NULL, NULL, 0, NULL));            \
        }                                                                                   \
        return TP_OK;                                                                       \
    }

#define TP_f16_CODE TP_TOPK_FLOAT16
#define TP_f32_CODE TP_FLOAT32
#define TP_f64_CODE TP_FLOAT64
DEFINE_SELECT(f16, uint16_t, uint32_t)
DEFINE_SELECT(f32, uint32_t, uint32_t)
DEFINE_SELECT(f64, uint64_t, uint64_t)

int tp_topk_select_isa(const tp_topk_segment *segments, int64_t count, int32_t dtype, int64_t k,
                       int32_t flags, void *workspace, int64_t workspace_bytes,
                       int64_t cand_cap, uint64_t *threshold_key, int isa) {
    TP_RETURN_IF(!threshold_key || count < 0 || (count > 0 && !segments), TP_ERR_ARGUMENT);
    *threshold_key = 0;
    TP_RETURN_IF(!tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    TP_RETURN_IF(!valid_dtype(dtype) || cand_cap < 0 || !workspace, TP_ERR_ARGUMENT);
    TP_RETURN_IF(flags & ~(TP_TOPK_PACKED | TP_TOPK_ZERO | TP_TOPK_NO_MASK), TP_ERR_ARGUMENT);
    int64_t total = 0;
    for (int64_t s = 0; s < count; s++) {
        TP_RETURN_IF(segments[s].numel < 0, TP_ERR_ARGUMENT);
        if (segments[s].numel == 0) continue;
        TP_RETURN_IF(!segments[s].data, TP_ERR_ARGUMENT);
        TP_RETURN_IF(!(flags & TP_TOPK_NO_MASK) && !segments[s].mask, TP_ERR_ARGUMENT);
        total += segments[s].numel;
    }
    TP_RETURN_IF(k < 0 || k > total, TP_ERR_ARGUMENT);
    if (total == 0) return TP_OK;
    char *ws = (char *)workspace;
    switch (dtype) {
        case TP_FLOAT32:
            return select_f32(segments, count, total, k, flags, ws, workspace_bytes, cand_cap,
                              threshold_key, isa);
        case TP_FLOAT64:
            return select_f64(segments, count, total, k, flags, ws, workspace_bytes, cand_cap,
                              threshold_key, isa);
        default:
            return select_f16(segments, count, total, k, flags, ws, workspace_bytes, cand_cap,
                              threshold_key, isa);
    }
}

int tp_topk_select(const tp_topk_segment *segments, int64_t count, int32_t dtype, int64_t k,
                   int32_t flags, void *workspace, int64_t workspace_bytes, int64_t cand_cap,
                   uint64_t *threshold_key) {
    return tp_topk_select_isa(segments, count, dtype, k, flags, workspace, workspace_bytes,
                              cand_cap, threshold_key, tp_isa_current());
}

/* ---------------------------------------------------------------------------------------- */
/* The split path: float32 slices that fit in L2, with AVX2.                                 */
/*
 * A slice in cache can be read several times for less than it costs to branch on its keys.
 * So instead of the one pass that collects every key of a sampled bracket (about a tenth of
 * the slice at k = 10%, each one a branch), the split path:
 *  1. samples ROW_SPLIT_SAMPLE keys and takes ROW_SPLITS thresholds from the sample's order
 *     statistics spread over the bracket (split_points);
 *  2. counts the keys above each threshold in one branch-free pass: the counts are exact, so
 *     the bucket (t[j], t[j + 1]] holding the k-th key, and its size, are known before any
 *     key is collected;
 *  3. marks in one more branch-free pass: mask = key above the bucket, and the bucket's
 *     indices packed into a list by a vector permute per 8 keys (no branch per key);
 *  4. selects among the bucket's keys (select_small) and sets the mask of the kept ones.
 * Thresholds only steer the speed: any thresholds give the exact result or a miss (the k-th
 * key outside them), which the one-pass sampled path then handles.
 * On 4096x4096 float32 rows (k = 10%), one thread, TSC cycles per row: sample 360, thresholds
 * 1200, counts 3000, mark 4100, select 1450, mask of the bucket 300; the one-pass sampled path
 * took about 19000 (its bracket holds a tenth of the row, and its collecting branch
 * mispredicts). Sample size, digit bits and threshold count were tuned there together.
 */
#define ROW_SPLITS 9
#define ROW_SPLIT_SAMPLE 128
#define ROW_SPLIT_MAX_LEN 65536 /* 256 KB of float32: the later passes still read from L2 */
#define ROW_SPLIT_MIN_LEN 512    /* 4x the sample; 1024-key rows: 0.44e9 -> 1.0e9, 2 threads */
#define ROW_SPLIT_DIGIT_BITS 10

#if TP_HAVE_X86_VARIANTS

/* ROW_SPLITS ascending thresholds from s sample keys (reordered; scratch holds 2s keys) such
 * that the k-th largest of `total` keys lies in (t[0], t[last]] with high probability: the
 * sample keys at descending ranks spread evenly over q +- d, where q = s k / total is the
 * expected number of sample keys above it and d is sample_z binomial standard deviations plus
 * 2. Ranks past the sample's ends give 0 and 0x7fffffff (above every key). Only the keys near
 * those ranks are ranked: a histogram of ROW_SPLIT_DIGIT_BITS bits picks them out (the top
 * bits in which the sample's keys differ, so order is kept), and each of those m keys is
 * ranked by counting the others above it (m^2 / 8 vector compares for m of about 40). */
TP_TARGET_AVX2 static void split_points(uint32_t *keys, uint32_t *scratch, int64_t s,
                                        int64_t total, int64_t k, uint32_t *t) {
    double p = (double)k / (double)total;
    int64_t q = (int64_t)(p * (double)s);
    int64_t d = (int64_t)(sample_z * sqrt((double)s * p * (1.0 - p))) + 2;
    int64_t rank[ROW_SPLITS];
    for (int j = 0; j < ROW_SPLITS; j++) /* j = 0: the lowest threshold, the largest rank */
        rank[j] = q + d - (2 * d * j) / (ROW_SPLITS - 1);
    int64_t rmin = rank[ROW_SPLITS - 1] < 0 ? 0 : rank[ROW_SPLITS - 1];
    int64_t rmax = rank[0] >= s ? s - 1 : rank[0];
    uint32_t vary = 0, kmax = 0;
    for (int64_t i = 0; i < s; i++) {
        vary |= keys[i] ^ keys[0];
        kmax = keys[i] > kmax ? keys[i] : kmax;
    }
    const int bits = ROW_SPLIT_DIGIT_BITS;
    const int shift = bit_length(vary) > bits ? bit_length(vary) - bits : 0;
    const uint32_t dmask = (1u << bits) - 1; /* keys agree above shift + bits */
    uint32_t h[1 << ROW_SPLIT_DIGIT_BITS];
    memset(h, 0, sizeof h);
    for (int64_t i = 0; i < s; i++) h[(keys[i] >> shift) & dmask]++;
    uint64_t dhi, dlo; /* the digits of descending ranks rmin and rmax */
    int64_t base; /* the number of keys above dhi: the rank of the first compacted one */
    digits_of_ranks(h, (kmax >> shift) & dmask, rmin, rmax, &dhi, &dlo, &base);
    int64_t m = 0; /* branch-free compaction of the keys whose digit lies in [dlo, dhi] */
    for (int64_t i = 0; i < s; i++) {
        scratch[m] = keys[i];
        m += (((keys[i] >> shift) & dmask) - dlo) <= dhi - dlo;
    }
    /* descending order: a key's place is the count of keys above it; equal keys take the
     * next free places (they are the same value, so which goes where does not matter) */
    uint32_t *sorted = scratch + s;
    uint8_t used[ROW_SPLIT_SAMPLE];
    memset(used, 0, (size_t)m);
    const int32_t *sk = (const int32_t *)scratch; /* keys < 2^31: int32 compares vectorize */
    for (int32_t i = 0; i < (int32_t)m; i++) {
        int32_t v = sk[i], r = 0;
        for (int32_t j2 = 0; j2 < (int32_t)m; j2++) r += sk[j2] > v;
        while (used[r]) r++;
        used[r] = 1;
        sorted[r] = (uint32_t)v;
    }
    for (int j = 0; j < ROW_SPLITS; j++)
        t[j] = rank[j] >= s ? 0 : rank[j] < 0 ? 0x7fffffffu : sorted[rank[j] - base];
}

/* The keys of x[0, len) above each threshold, branch-free. Keys are compared as 8-bit
 * offsets from the lowest threshold, 32 per vector: (key - base) >> sh, saturated to int8, with
 * sh just large enough that the highest threshold fits. The thresholds are first moved onto
 * that grid (t[j] becomes base + (u << sh) - 1, for which the counts are exact); they only
 * steer the selection, so rounding them to 1/128 of the bracket costs nothing. The byte
 * counters take 255 steps; then they are summed into 64-bit ones. Against 32-bit compares
 * (8 keys each) this is 4 times fewer compares and counter updates; the pass went from 8.8 to
 * about 5 cycles per 8 keys. Requires t ascending and t[0] < Inf's key. */
TP_TARGET_AVX2 static void count_above_f32_avx2(const uint32_t *x, int64_t len, uint32_t *t,
                                                int64_t *above) {
    /* A threshold of 0x7fffffff (past the sample's top) has no key above it: its compare
     * (offset > 127) is never true, and the grid is sized by the others. */
    int top = ROW_SPLITS - 1;
    while (top > 0 && t[top] == 0x7fffffffu) top--;
    const uint64_t base = (uint64_t)t[0] + 1;
    const int span_bits = bit_length((uint64_t)t[top] + 1 - base);
    const int sh = span_bits > 7 ? span_bits - 7 : 0;
    __m256i thr[ROW_SPLITS], sum[ROW_SPLITS];
    for (int j = 0; j < ROW_SPLITS; j++) {
        sum[j] = _mm256_setzero_si256();
        if (t[j] == 0x7fffffffu) {
            thr[j] = _mm256_set1_epi8(127);
            continue;
        }
        uint64_t u = ((uint64_t)t[j] + 1 - base) >> sh; /* <= 127 */
        t[j] = (uint32_t)(base + (u << sh) - 1);
        thr[j] = _mm256_set1_epi8((int8_t)(u - 1)); /* offset > u - 1: key > t[j] */
    }
    const __m256i absm = _mm256_set1_epi32(0x7fffffff), vbase = _mm256_set1_epi32((int32_t)base);
    const __m128i shift = _mm_cvtsi32_si128(sh);
#define OFFSETS(a, b) /* keys below base give negative offsets (arithmetic shift) */        \
    _mm256_packs_epi32(                                                                    \
        _mm256_sra_epi32(_mm256_sub_epi32(_mm256_and_si256(_mm256_loadu_si256((const __m256i *)(a)), absm), vbase), shift), \
        _mm256_sra_epi32(_mm256_sub_epi32(_mm256_and_si256(_mm256_loadu_si256((const __m256i *)(b)), absm), vbase), shift))
    int64_t i = 0;
    while (i + 32 <= len) {
        const int64_t end = len - i > 255 * 32 ? i + 255 * 32 : len;
        __m256i acc[ROW_SPLITS];
        for (int j = 0; j < ROW_SPLITS; j++) acc[j] = _mm256_setzero_si256();
        for (; i + 32 <= end; i += 32) {
            /* fetch the next slice's lines while this one is counted (prefetches never fault) */
            __builtin_prefetch(x + len + i);
            __builtin_prefetch(x + len + i + 16);
            /* lane order is irrelevant to counts */
            __m256i o = _mm256_packs_epi16(OFFSETS(x + i, x + i + 8), OFFSETS(x + i + 16, x + i + 24));
            for (int j = 0; j < ROW_SPLITS; j++) /* a true compare is -1 */
                acc[j] = _mm256_sub_epi8(acc[j], _mm256_cmpgt_epi8(o, thr[j]));
        }
        for (int j = 0; j < ROW_SPLITS; j++)
            sum[j] = _mm256_add_epi64(sum[j], _mm256_sad_epu8(acc[j], _mm256_setzero_si256()));
    }
#undef OFFSETS
    for (int j = 0; j < ROW_SPLITS; j++) {
        int64_t c64[4];
        _mm256_storeu_si256((__m256i *)c64, sum[j]);
        above[j] = c64[0] + c64[1] + c64[2] + c64[3];
    }
    for (; i < len; i++) {
        uint32_t key = x[i] & 0x7fffffffu;
        for (int j = 0; j < ROW_SPLITS; j++) above[j] += key > t[j];
    }
}

/* For each 8-bit mask, the positions of its set bits, one per byte, lowest first: the lane
 * order that packs the selected lanes of a vector to its front. Filled once at load time. */
static uint64_t split_pack_order[256];
__attribute__((constructor)) static void split_pack_order_init(void) {
    for (int m = 0; m < 256; m++) {
        uint64_t order = 0;
        for (int lane = 7; lane >= 0; lane--)
            if (m >> lane & 1) order = order << 8 | (uint64_t)lane;
        split_pack_order[m] = order;
    }
}

/* The mark pass of the split path: mask[i] = key > HI (mask may be NULL), the indices of the
 * keys in [LO, HI] (LO >= 1) packed into idx without a branch (each vector's selected lanes
 * are permuted to the front and stored whole; the next store starts where they end, so idx
 * needs 8 entries of slack), and with zero, x[i] = 0 where key < LO. Returns the count. */
TP_TARGET_AVX2 static int64_t split_mark_f32_avx2(uint32_t *x, int64_t len, uint32_t LO,
                                                  uint32_t HI, uint8_t *mask, int zero,
                                                  uint32_t *idx, uint32_t *kmax_out) {
    const __m256i absm = _mm256_set1_epi32(0x7fffffff);
    const __m256i vhi = _mm256_set1_epi32((int32_t)HI);
    const __m256i vlo1 = _mm256_set1_epi32((int32_t)(LO - 1)); /* key > LO - 1: key >= LO */
    const __m256i one = _mm256_set1_epi8(1), eight = _mm256_set1_epi32(8);
    __m256i at = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); /* the indices of the 8 keys */
    __m256i vmax = _mm256_setzero_si256();
    int64_t c = 0, i = 0;
    for (; i + 32 <= len; i += 32) {
        __m256i g[4];
        for (int q = 0; q < 4; q++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(x + i + 8 * q));
            __m256i key = _mm256_and_si256(v, absm);
            vmax = _mm256_max_epi32(vmax, key);
            __m256i ge = _mm256_cmpgt_epi32(key, vlo1);
            g[q] = _mm256_cmpgt_epi32(key, vhi);
            uint32_t m = (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_andnot_si256(g[q], ge)));
            __m256i order = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)&split_pack_order[m]));
            _mm256_storeu_si256((__m256i *)(idx + c), _mm256_permutevar8x32_epi32(at, order));
            at = _mm256_add_epi32(at, eight);
            c += __builtin_popcount(m);
            if (zero) _mm256_storeu_si256((__m256i *)(x + i + 8 * q), _mm256_and_si256(v, ge));
        }
        if (mask)
            _mm256_storeu_si256((__m256i *)(mask + i),
                                _mm256_and_si256(tp_lanes_to_bytes(g[0], g[1], g[2], g[3]), one));
    }
    uint32_t lanes[8], kmax = 0;
    _mm256_storeu_si256((__m256i *)lanes, vmax);
    for (int l = 0; l < 8; l++) kmax = lanes[l] > kmax ? lanes[l] : kmax;
    for (; i < len; i++) {
        uint32_t key = x[i] & 0x7fffffffu;
        kmax = key > kmax ? key : kmax;
        if (mask) mask[i] = key > HI;
        if (key >= LO && key <= HI) idx[c++] = (uint32_t)i;
        if (zero && key < LO) x[i] = 0;
    }
    *kmax_out = kmax;
    return c;
}

/* The need-th largest of n candidates by key, ties to the lower index (candidates in index
 * order; keys rel < span): its key into *key_out and its index into *cut_out. Rounds of 16-way
 * counts narrow the candidates to the bucket of 2^sh keys holding it (the keys at or above
 * each of 15 bucket bounds counted, then that bucket compacted into bidx/brel); 32 or fewer
 * are ranked directly. For the split path's ~100 candidates this replaces select_candidates,
 * whose 256-bucket histogram per digit (clear, fill, scan) cost more than the keys did. */
TP_TARGET_AVX2 static void select_small(const uint32_t *idx, const uint32_t *rel, int64_t n,
                                        int64_t need, uint32_t span, uint32_t *bidx,
                                        uint32_t *brel, uint32_t *key_out, int64_t *cut_out) {
    uint32_t base = 0;
    const uint32_t *si = idx, *sr = rel;
    while (n > 32 && span > 1) {
        const int bl = bit_length(span - 1), sh = bl > 4 ? bl - 4 : 0;
        int64_t above[17];
        above[0] = n;
        above[16] = 0;
        for (int b = 1; b < 16; b++) {
            const uint32_t bound = (uint32_t)b << sh;
            int32_t c = 0;
            for (int64_t i = 0; i < n; i++) c += sr[i] >= bound;
            above[b] = c;
        }
        int b = 15;
        while (above[b] < need) b--;
        need -= above[b + 1];
        const uint32_t lo = (uint32_t)b << sh;
        int64_t w = 0; /* branch-free: always store, advance on a match */
        for (int64_t i = 0; i < n; i++) {
            uint32_t r = sr[i];
            bidx[w] = si[i];
            brel[w] = r - lo;
            w += (r >> sh) == (uint32_t)b;
        }
        base += lo;
        n = w;
        si = bidx;
        sr = brel;
        span = (uint32_t)1 << sh;
    }
    int64_t e = need - 1; /* span 1: all keys equal, the need-th in index order */
    if (span > 1) {
        const int32_t *sk = (const int32_t *)sr; /* keys < 2^31 */
        for (int64_t i = 0; i < n; i++) {
            int32_t v = sk[i], r = 0;
            for (int64_t j = 0; j < n; j++) r += sk[j] > v;
            for (int64_t j = 0; j < i; j++) r += sk[j] == v;
            if (r == need - 1) e = i;
        }
    }
    *key_out = base + sr[e];
    *cut_out = si[e];
}

/* The split path for one contiguous float32 slice (see split_points). Workspace: `keys` of
 * len uint32, cidx and ckey of len entries each (halves: candidates and their compaction).
 * Returns 0, 1 on NaN, or 2 when the k-th key fell outside the thresholds or its bucket holds
 * more than half the slice (the caller then takes the one-pass sampled path). */
TP_TARGET_AVX2 static int row_split_f32_avx2(uint32_t *x, int64_t len, int64_t k, int zero,
                                             uint8_t *mask, uint64_t *thr, uint32_t *keys,
                                             int64_t *cidx, uint64_t *ckey) {
    const int64_t s = ROW_SPLIT_SAMPLE, stride = len / ROW_SPLIT_SAMPLE, half = len / 2;
    for (int64_t j = 0; j < s; j++)
        keys[j] = x[j * stride + jitter((uint64_t)j, stride)] & 0x7fffffffu;
    uint32_t t[ROW_SPLITS];
    split_points(keys, keys + s, s, len, k, t);
    if (t[0] >= 0x7f800000u) return 2; /* Inf or NaN in the sample: the one-pass path copes */
    int64_t above[ROW_SPLITS];
    count_above_f32_avx2(x, len, t, above);
    /* the k-th key lies in (t[j], t[j + 1]] for the last j with above[j] >= k */
    int j = -1;
    while (j + 1 < ROW_SPLITS && above[j + 1] >= k) j++;
    if (j < 0 || j == ROW_SPLITS - 1 || above[j] - above[j + 1] > half) return 2;
    const uint32_t LO = t[j] + 1, HI = t[j + 1];
    uint32_t kmax;
    int64_t found = split_mark_f32_avx2(x, len, LO, HI, mask, zero, keys, &kmax);
    if (kmax > 0x7f800000u) return 1; /* NaN: zero is never asked for then (see rows_) */
    const uint32_t *cand = keys; /* the candidates' indices; their keys, relative to LO: */
    uint32_t *rel = (uint32_t *)ckey;
    for (int64_t i = 0; i < found; i++) rel[i] = (x[cand[i]] & 0x7fffffffu) - LO;
    uint32_t trel;
    int64_t cut;
    select_small(cand, rel, found, k - above[j + 1], HI - LO + 1, (uint32_t *)cidx,
                 (uint32_t *)cidx + len, &trel, &cut);
    if (thr) *thr = LO + trel;
    /* decide the candidates 8 at a time (rel and indices are < 2^31: signed compares), then
     * store each one's byte: about half are kept, unpredictably, so no branch on it */
    const __m256i vt = _mm256_set1_epi32((int32_t)trel), vcut = _mm256_set1_epi32((int32_t)cut);
    for (int64_t i = 0; i < found; i += 8) { /* rel and cand have 8 entries of slack */
        __m256i r = _mm256_loadu_si256((const __m256i *)(rel + i));
        __m256i c = _mm256_loadu_si256((const __m256i *)(cand + i));
        __m256i keep = _mm256_or_si256(_mm256_cmpgt_epi32(r, vt),
                                       _mm256_andnot_si256(_mm256_cmpgt_epi32(c, vcut),
                                                           _mm256_cmpeq_epi32(r, vt)));
        uint32_t bits = (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(keep));
        int n = found - i < 8 ? (int)(found - i) : 8;
        if (mask)
            for (int l = 0; l < n; l++) mask[cand[i + l]] = (uint8_t)(bits >> l & 1);
        if (zero)
            for (int l = 0; l < n; l++) x[cand[i + l]] &= 0u - (bits >> l & 1);
    }
    return 0;
}
#define ROW_SPLIT_f32(x, len, k, zero, mask, thr, keys, cidx, ckey, isa)                   \
    (((isa) == TP_ISA_AVX2 || (isa) == TP_ISA_AVX512) && (len) <= ROW_SPLIT_MAX_LEN         \
         ? row_split_f32_avx2(x, len, k, zero, mask, thr, keys, cidx, ckey)                 \
         : 2)
#else
#define ROW_SPLIT_f32(x, len, k, zero, mask, thr, keys, cidx, ckey, isa) 2
#endif
#define ROW_SPLIT_f16(x, len, k, zero, mask, thr, keys, cidx, ckey, isa) 2
#define ROW_SPLIT_f64(x, len, k, zero, mask, thr, keys, cidx, ckey, isa) 2

/* ---------------------------------------------------------------------------------------- */
/* Per-slice selection.                                                                      */

/* One thread's share: histogram, keys, candidate indices and keys. */
static int64_t rows_thread_bytes(int32_t dtype, int64_t len) {
    int64_t b = (int64_t)1 << levels_of(dtype)->bits[0];
    int64_t kb = dtype == TP_FLOAT64 ? 8 : 4;
    int64_t bytes = b * 4 + len * (kb + 16) + 8; /* + 8: cidx is 8-aligned after the keys */
    return (bytes + 63) & ~(int64_t)63;
}

int64_t tp_topk_rows_workspace_bytes(int32_t dtype, int64_t len) {
    if (!valid_dtype(dtype) || len < 0) return -1;
    return rows_thread_bytes(dtype, len) * tp_get_num_threads() + 64;
}

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The sampled path for one contiguous slice (bool mask or none): a sample of every
 * len/TOPK_ROW_SAMPLE-th key (jittered) brackets the k-th key, one pass over the slice writes
 * the mask outside the bracket and collects the keys inside, and the exact selection runs on
 * those. Float32 slices up to ROW_SPLIT_MAX_LEN with AVX2 take the split path instead, and
 * come here only when it misses. Returns 0, 1 on NaN, 2 when the bracket missed (the
 * histogram path then redoes the slice), or 3 for slices shorter than TOPK_ROW_SAMPLE_MIN
 * that the split path did not take (the histogram path does them). Workspace: keys of `len`
 * (the split path's), cidx and
 * ckey of `len` entries each; halves hold candidates and their compaction. */
#define TOPK_ROW_SAMPLE 512
#define TOPK_ROW_SAMPLE_MIN 2048 /* shorter slices: the histogram path costs no more */
#define DEFINE_ROW_SAMPLED(SUF, S, K)                                                         \
    static int row_sampled_##SUF(S *x, int64_t len, int64_t k, int zero, uint8_t *mask,     \
                                 uint64_t *thr, K *keys, int64_t *cidx, uint64_t *ckey,     \
                                 int isa) {                                                 \
        const int64_t half = len / 2, ns = TOPK_ROW_SAMPLE, stride = len / TOPK_ROW_SAMPLE; \
        /* float32 with AVX2 tries the split path first (see split_points) */              \
        int split = ROW_SPLIT_##SUF(x, len, k, zero, mask, thr, keys, cidx, ckey, isa);     \
        (void)keys;                                                                         \
        if (split < 2) return split;                                                        \
        if (len < TOPK_ROW_SAMPLE_MIN) return 3; /* short: straight to the histogram path */ \
        uint64_t *sample = ckey, *tmp = (uint64_t *)cidx;                                   \
        /* fetch the next slice while this one is worked on (prefetches never fault, so     \
         * running past the array's end is harmless) */                                     \
        for (int64_t b = 0; b < len * (int64_t)sizeof(S); b += 64)                          \
            __builtin_prefetch((const char *)(x + len) + b);                                \
        for (int64_t j = 0; j < ns; j++)                                                    \
            sample[j] = (K)(x[j * stride + jitter((uint64_t)j, stride)] & KEYMASK_##SUF);   \
        uint64_t lo64, hi64;                                                                \
        sample_range(sample, tmp, ns, len, k, KEYMASK_##SUF, 8, 2, 1, &lo64, &hi64);        \
        const K LO = (K)lo64, HI = (K)hi64;                                                 \
        mark_stats st = {0, 0};                                                             \
        int64_t found = PICK(SUF, mark, isa)(x, 0, len, 0, 0, LO, HI, LO, 0, 1, mask, 0, 0, \
                                             cidx, ckey, half, &st);                        \
        if (st.kmax > INFKEY_##SUF) return 1;                                               \
        int64_t need = k - st.above;                                                        \
        if (found < 0 || need < 1 || need > found) return 2;                                \
        uint64_t trel;                                                                      \
        int64_t cut;                                                                        \
        select_candidates(cidx, ckey, found, need, bit_length((uint64_t)(K)(HI - LO)),      \
                          cidx + half, ckey + half, &trel, &cut);                           \
        if (thr) *thr = (uint64_t)LO + trel;                                                \
        if (zero) PICK(SUF, zero_below, isa)(x, 0, len, LO);                                \
        /* branch-free: about half the candidates are kept, unpredictably */               \
        if (mask)                                                                           \
            for (int64_t i = 0; i < found; i++)                                             \
                mask[cidx[i]] = (uint8_t)((ckey[i] > trel) | ((ckey[i] == trel) & (cidx[i] <= cut))); \
        if (zero)                                                                           \
            for (int64_t i = 0; i < found; i++)                                             \
                if (!((ckey[i] > trel) | ((ckey[i] == trel) & (cidx[i] <= cut)))) x[cidx[i]] = 0; \
        return 0;                                                                           \
    }
DEFINE_ROW_SAMPLED(f16, uint16_t, uint32_t)
DEFINE_ROW_SAMPLED(f32, uint32_t, uint32_t)
DEFINE_ROW_SAMPLED(f64, uint64_t, uint64_t)

#define DEFINE_ROWS(SUF, S, K)                                                                \
    static int rows_##SUF(S *x, int64_t outer, int64_t len, int64_t inner, int64_t k,       \
                          int32_t flags, uint8_t *mask, uint64_t *thr, char *ws,            \
                          int64_t ws_bytes, int isa) {                                      \
        const topk_levels *lv = &LEVELS_##SUF;                                              \
        const int64_t per = rows_thread_bytes(TP_##SUF##_CODE, len);                        \
        const int64_t rows = outer * inner;                                                 \
        const int packed = (flags & TP_TOPK_PACKED) != 0, zero = (flags & TP_TOPK_ZERO) != 0; \
        if (flags & TP_TOPK_NO_MASK) mask = NULL;                                           \
        int threads = tp_threads_for(rows * len, TOPK_ROWS_MIN_PER_THREAD);                 \
        if (threads > rows) threads = (int)rows;                                            \
        /* packed bits of different slices share bytes unless slices are contiguous and   \
         * threads split at byte boundaries */                                              \
        int64_t group = 1;                                                                  \
        if (packed && mask) {                                                               \
            if (inner != 1)                                                                 \
                threads = 1;                                                                \
            else                                                                            \
                group = 8 / gcd64(len % 8 == 0 ? 8 : len % 8, 8);                           \
        }                                                                                   \
        while (threads > 1 && per * threads > ws_bytes) threads--;                          \
        TP_RETURN_IF(per > ws_bytes, TP_ERR_BUFFER);                                        \
        const int64_t groups = (rows + group - 1) / group;                                  \
        int nan = 0;                                                                        \
        /* in-place zeroing must not start before every slice is known to be NaN-free */    \
        if (zero && any_nan_##SUF(x, rows * len)) return TP_ERR_NONFINITE;                  \
        (void)threads;                                                                      \
        TOPK_PRAGMA("omp parallel num_threads(threads) reduction(|:nan) if(threads > 1)")       \
        {                                                                                   \
            const int tid = tp_team_id();                                                   \
            char *mine = ws + per * tid;                                                    \
            uint32_t *h = (uint32_t *)mine;                                                 \
            K *keys = (K *)(mine + ((int64_t)4 << lv->bits[0]));                            \
            /* 8-aligned: 4-byte keys of an odd length would leave cidx at 4 mod 8 */       \
            int64_t *cidx = (int64_t *)((char *)keys + ((len * (int64_t)sizeof(K) + 7) & ~(int64_t)7)); \
            uint64_t *ckey = (uint64_t *)(cidx + len);                                      \
            memset(h, 0, (size_t)4 << lv->bits[0]);                                         \
            TOPK_PRAGMA("omp for schedule(static)")                                             \
            for (int64_t g = 0; g < groups; g++) {                                          \
                int64_t r_end = (g + 1) * group < rows ? (g + 1) * group : rows;            \
                for (int64_t r = g * group; r < r_end; r++) {                               \
                    int64_t o = r / inner, j = r % inner;                                   \
                    int64_t base = o * len * inner + j;                                     \
                    if (inner == 1 && !packed && len >= ROW_SPLIT_MIN_LEN && k > 0 &&       \
                        k < len && sample_z >= 0) {                                         \
                        int status = row_sampled_##SUF(x + base, len, k, zero,              \
                                                       mask ? mask + base : NULL,           \
                                                       thr ? thr + r : NULL, keys, cidx,    \
                                                       ckey, isa);                          \
                        if (status < 2) {                                                   \
                            nan |= status;                                                  \
                            continue;                                                       \
                        }                                                                   \
                        if (status == 2) /* 3: too short for the one-pass sampled path */   \
                            __atomic_fetch_add(&sample_misses, 1, __ATOMIC_RELAXED);        \
                    }                                                                       \
                    nan |= PICK(SUF, row, isa)(x + base, len, inner, k, packed, zero, mask, \
                                               base, thr ? thr + r : NULL, lv, h, keys,     \
                                               cidx, ckey);                                 \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        return nan ? TP_ERR_NONFINITE : TP_OK;                                              \
    }

#define DEFINE_NAN_SCAN(SUF, S, K, ABS, INFK)                                                 \
    static int any_nan_##SUF(const S *x, int64_t n) {                                       \
        K mx = 0;                                                                           \
        for (int64_t i = 0; i < n; i++) {                                                   \
            K key = (K)(x[i] & ABS);                                                        \
            mx = key > mx ? key : mx;                                                       \
        }                                                                                   \
        return mx > INFK;                                                                   \
    }
DEFINE_NAN_SCAN(f16, uint16_t, uint32_t, 0x7fffu, 0x7c00u)
DEFINE_NAN_SCAN(f32, uint32_t, uint32_t, 0x7fffffffu, 0x7f800000u)
DEFINE_NAN_SCAN(f64, uint64_t, uint64_t, 0x7fffffffffffffffULL, 0x7ff0000000000000ULL)

DEFINE_ROWS(f16, uint16_t, uint32_t)
DEFINE_ROWS(f32, uint32_t, uint32_t)
DEFINE_ROWS(f64, uint64_t, uint64_t)

int tp_topk_rows_isa(void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                     int64_t k, int32_t flags, void *mask, uint64_t *thresholds,
                     void *workspace, int64_t workspace_bytes, int isa) {
    TP_RETURN_IF(!tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    TP_RETURN_IF(!valid_dtype(dtype) || outer < 0 || len < 0 || inner < 0, TP_ERR_ARGUMENT);
    TP_RETURN_IF(flags & ~(TP_TOPK_PACKED | TP_TOPK_ZERO | TP_TOPK_NO_MASK), TP_ERR_ARGUMENT);
    TP_RETURN_IF(k < 0 || k > len, TP_ERR_ARGUMENT);
    if (outer == 0 || len == 0 || inner == 0) return TP_OK;
    TP_RETURN_IF(!data || !workspace, TP_ERR_ARGUMENT);
    TP_RETURN_IF(!(flags & TP_TOPK_NO_MASK) && !mask, TP_ERR_ARGUMENT);
    char *ws = (char *)workspace;
    switch (dtype) {
        case TP_FLOAT32:
            return rows_f32((uint32_t *)data, outer, len, inner, k, flags, (uint8_t *)mask,
                            thresholds, ws, workspace_bytes, isa);
        case TP_FLOAT64:
            return rows_f64((uint64_t *)data, outer, len, inner, k, flags, (uint8_t *)mask,
                            thresholds, ws, workspace_bytes, isa);
        default:
            return rows_f16((uint16_t *)data, outer, len, inner, k, flags, (uint8_t *)mask,
                            thresholds, ws, workspace_bytes, isa);
    }
}

int tp_topk_rows(void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                 int64_t k, int32_t flags, void *mask, uint64_t *thresholds, void *workspace,
                 int64_t workspace_bytes) {
    return tp_topk_rows_isa(data, outer, len, inner, dtype, k, flags, mask, thresholds,
                            workspace, workspace_bytes, tp_isa_current());
}

/* ---------------------------------------------------------------------------------------- */
/* N:M masks.                                                                                */

#define NM_MIN_PER_THREAD 262144

#define DEFINE_NM(SUF, S)                                                                     \
    static int nm_run_##SUF(const S *x, int64_t outer, int64_t len, int64_t inner, int32_t n, \
                            int32_t m, uint8_t *mask, int isa) {                            \
        int nan = 0;                                                                        \
        if (outer == 1 || inner > 1) {                                                      \
            /* split the (len) axis into whole groups per thread, per outer block */        \
            int64_t groups = len / m;                                                       \
            int threads = tp_threads_for(outer * len * inner, NM_MIN_PER_THREAD);           \
            (void)threads;                                                                  \
            int64_t chunk = 4096 / (inner < 4096 ? inner : 4096);                           \
            chunk = chunk < 1 ? 1 : chunk;                                                  \
            int64_t pieces = (groups + chunk - 1) / chunk;                                  \
            TOPK_PRAGMA("omp parallel for num_threads(threads) schedule(static) reduction(|:nan) if(threads > 1)") \
            for (int64_t t = 0; t < outer * pieces; t++) {                                  \
                int64_t o = t / pieces, p = t % pieces;                                     \
                int64_t g0 = p * chunk, g1 = g0 + chunk < groups ? g0 + chunk : groups;      \
                int64_t at = o * len * inner + g0 * m * inner;                              \
                nan |= PICK(SUF, nm, isa)(x + at, (g1 - g0) * m, inner, n, m, mask + at);   \
            }                                                                               \
        } else {                                                                            \
            int threads = tp_threads_for(outer * len, NM_MIN_PER_THREAD);                   \
            (void)threads;                                                                  \
            TOPK_PRAGMA("omp parallel for num_threads(threads) schedule(static) reduction(|:nan) if(threads > 1)") \
            for (int64_t o = 0; o < outer; o++)                                             \
                nan |= PICK(SUF, nm, isa)(x + o * len, len, 1, n, m, mask + o * len);       \
        }                                                                                   \
        return nan ? TP_ERR_NONFINITE : TP_OK;                                              \
    }

DEFINE_NM(f16, uint16_t)
DEFINE_NM(f32, uint32_t)
DEFINE_NM(f64, uint64_t)

int tp_nm_mask_isa(const void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
                   int32_t n, int32_t m, uint8_t *mask, int isa) {
    TP_RETURN_IF(!tp_isa_available(isa), TP_ERR_UNSUPPORTED);
    TP_RETURN_IF(!valid_dtype(dtype) || outer < 0 || len < 0 || inner < 0, TP_ERR_ARGUMENT);
    TP_RETURN_IF(m < 1 || m > NM_MAX_M || n < 0 || n > m || len % m != 0, TP_ERR_ARGUMENT);
    if (outer == 0 || len == 0 || inner == 0) return TP_OK;
    TP_RETURN_IF(!data || !mask, TP_ERR_ARGUMENT);
    switch (dtype) {
        case TP_FLOAT32:
            return nm_run_f32((const uint32_t *)data, outer, len, inner, n, m, mask, isa);
        case TP_FLOAT64:
            return nm_run_f64((const uint64_t *)data, outer, len, inner, n, m, mask, isa);
        default:
            return nm_run_f16((const uint16_t *)data, outer, len, inner, n, m, mask, isa);
    }
}

int tp_nm_mask(const void *data, int64_t outer, int64_t len, int64_t inner, int32_t dtype,
               int32_t n, int32_t m, uint8_t *mask) {
    return tp_nm_mask_isa(data, outer, len, inner, dtype, n, m, mask, tp_isa_current());
}
