/*
 * sampled.c: the sampled path of whole-array selection, tried first on large inputs.
 *
 * The histogram pass costs as much as the mask pass. A sample of the data (up to 8192 groups
 * of 16 neighbours, a cache line each, at jittered positions; at most 1 key in 32) estimates
 * where the k-th key lies; its sorted keys give a range [LO, HI] that holds the k-th key with
 * high probability (sample_range.c). Then ONE pass over the data writes the mask for
 * everything outside the range, counts the keys above it and collects the (few) keys inside;
 * the exact selection runs on those in cache. When the range missed (too many or too few
 * above, or more candidates than the workspace takes: rare, e.g. data concentrated on a few
 * values) the histogram path (histogram.c) redoes the work, so the result never depends on
 * the sample, only the time does. The caller's options set the range's width
 * (tp_topk_options; a zero width makes misses frequent, for tests) and its stats count the
 * misses.
 */
#include "topk_internal.h"

/* A bigger sample costs a little more and narrows the range: fewer candidates to collect,
 * select and scatter. 8192 groups (128K keys) halved the time of those steps against 2048 on
 * 16M float32 (10% and 50% masks 1.95e9 / 1.48e9 -> 2.35e9 / 2.1e9 elements/s). */
#define TOPK_SAMPLE_GROUPS 8192
#define TOPK_SAMPLE_GROUP 16
#define TOPK_SAMPLE_AHEAD 16 /* draws between a group's prefetch and its read */

#define TOPK_DTYPE TP_FLOAT16
#include "sampled_tmpl.h"
#define TOPK_DTYPE TP_BFLOAT16
#include "sampled_tmpl.h"
#define TOPK_DTYPE TP_FLOAT32
#include "sampled_tmpl.h"
#define TOPK_DTYPE TP_FLOAT64
#include "sampled_tmpl.h"
