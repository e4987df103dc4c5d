/* spans.c: does any buffer that a kernel writes overlap another buffer of the same call? */
#include <string.h>
#include "spans.h"

/* Sort spans by start: a natural merge sort (merge neighbouring ascending runs until one is
 * left) into `tmp`. Spans are laid out role by role, and each role's arrays were usually
 * allocated in order, so there are a handful of runs and this is close to linear, several times
 * faster than qsort on the lists of hundreds of arrays this exists for. Result ends in `a`. */
static void sort_spans(tp_span *a, tp_span *tmp, int64_t n) {
    tp_span *src = a, *dst = tmp;
    for (;;) {
        int64_t i = 0, out = 0, runs = 0;
        while (i < n) {
            int64_t mid = i + 1;
            while (mid < n && src[mid - 1].start <= src[mid].start) mid++;
            int64_t end = mid;
            if (end < n) {
                end++;
                while (end < n && src[end - 1].start <= src[end].start) end++;
            }
            int64_t x = i, y = mid;
            while (x < mid && y < end) dst[out++] = src[y].start < src[x].start ? src[y++] : src[x++];
            while (x < mid) dst[out++] = src[x++];
            while (y < end) dst[out++] = src[y++];
            i = end;
            runs++;
        }
        tp_span *t = src;
        src = dst;
        dst = t;
        if (runs <= 1) break;
    }
    if (src != a) memcpy(a, src, sizeof(tp_span) * (size_t)n);
}

int tp_spans_disjoint(tp_span *spans, int64_t n, tp_span *tmp) {
    sort_spans(spans, tmp, n);
    /* Sorted by start, a span overlaps an earlier one exactly when it starts before that
     * one's end; only overlaps that involve a written span count. */
    uintptr_t end_any = 0, end_written = 0;
    for (int64_t s = 0; s < n; s++) {
        if (spans[s].start < end_written || (spans[s].writes && spans[s].start < end_any)) return 0;
        if (spans[s].end > end_any) end_any = spans[s].end;
        if (spans[s].writes && spans[s].end > end_written) end_written = spans[s].end;
    }
    return 1;
}
