/*
 * histogram.c: the histogram path of whole-array selection (every size; large inputs try the
 * sampled path of sampled.c first). For one array or a concatenation of many ("segments"),
 * split into units (one or more per thread):
 *  1. histogram pass over the data on the top digit of the key (12 bits for float32), one
 *     histogram per unit of work (one per thread), under OpenMP;
 *  2. walk the summed histogram from the top to the bucket holding the k-th key;
 *  3. if that bucket holds more candidates than the workspace can take, refine it with another
 *     histogram pass on the next digit restricted to the bucket (rare: only very concentrated
 *     data), until it fits or the key is fully resolved;
 *  4. one pass that writes the mask for everything outside the bucket (above: kept, below:
 *     dropped) and compacts the bucket's (index, key) pairs into the workspace, each unit at an
 *     offset known from its own histogram, so the candidates come out in index order;
 *  5. radix-select inside the candidates (now in cache) with 8-bit digits, compacting as it goes
 *     (candidates.c): it ends with the exact threshold T and the index `cut` of the last tied
 *     element kept;
 *  6. scatter the kept candidates into the mask.
 * A key is kept iff key > T, or key == T and its flat index <= cut: a rule that depends on
 * neither the thread count nor the SIMD variant, so every variant gives the same mask.
 * When the bucket is one fully resolved key (heavy ties), `cut` comes from a scan for the
 * need-th tied element and one pass applies the rule.
 * The histogram passes are scalar by nature and have one version; the passes of step 4 and
 * the rule pass vectorize and come from the caller's ISA (variants.c).
 */
#include "topk_internal.h"

#define TOPK_DTYPE TP_FLOAT16
#include "histogram_tmpl.h"
#define TOPK_DTYPE TP_BFLOAT16
#include "histogram_tmpl.h"
#define TOPK_DTYPE TP_FLOAT32
#include "histogram_tmpl.h"
#define TOPK_DTYPE TP_FLOAT64
#include "histogram_tmpl.h"
