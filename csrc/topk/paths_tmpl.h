/*
 * paths_tmpl.h: the prototypes of one element type's whole-array paths (histogram.c,
 * sampled.c), instantiated per type by topk_internal.h.
 */
#include "key_type.h"

/* The histogram path (steps 1-6 of histogram.c): TP_OK or TP_ERR_NONFINITE. */
int TP_CAT(histogram_select, SUF)(const topk_job *job, const TP_CAT(topk_passes, SUF) *pass,
                                  uint64_t *threshold_key);
/* The sampled path: TP_OK, TP_ERR_NONFINITE, or 1 when its bracket missed and the histogram
 * path must run. z: the bracket's half-width in standard deviations. */
int TP_CAT(sampled_select, SUF)(const topk_job *job, const TP_CAT(topk_passes, SUF) *pass, double z,
                                uint64_t *threshold_key);
/* Step 6 of both paths: decide the collected candidates (index-ordered; unit u's sit at
 * first[u]..last[u] - 1, their keys relative to the range's base; trel the threshold relative
 * to it) and write them into the masks (and zero the losers), each unit its own. */
void TP_CAT(scatter, SUF)(const topk_job *job, const int64_t *first, const int64_t *last,
                          const int64_t *cidx, const uint64_t *ckey, uint64_t trel, int64_t cut);

#include "key_type_end.h"
