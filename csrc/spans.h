/* spans.h: the overlap check shared by the argument checkers (internal, not seen by cffi). */
#ifndef TP_SPANS_H
#define TP_SPANS_H

#include "common.h"

/* 1 when no written span shares a byte with any other span (spans that are only read may
 * overlap each other), else 0. Sorts `spans` (n entries) using `tmp` (n entries). Empty spans
 * [0, 0) overlap nothing. */
int tp_spans_disjoint(tp_span *spans, int64_t n, tp_span *tmp);

#endif /* TP_SPANS_H */
