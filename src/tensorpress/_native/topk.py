"""C backend of the top-k family (csrc/topk/): pointers taken, one call, status -> exception.

Arguments arrive validated by tensorpress.prune: C-contiguous float16/bfloat16/float32/float64
arrays, masks of the right size and dtype, 0 <= k <= n. Workspaces are allocated here (never in
C) and kept per Python thread between calls, so repeated calls neither re-allocate nor re-fault
their pages.

Testing aid: `sampling(width)` makes this thread's calls pass that sample width to C (the
sampled paths' bracket; 0 forces their fallback) and count the misses C reports per call.
"""

import contextlib
import threading

import ml_dtypes
import numpy as np

from . import check, ffi, isa_code, lib

_DTYPE_CODES = {
    np.dtype(np.float32): lib.TP_FLOAT32,
    np.dtype(np.float64): lib.TP_FLOAT64,
    np.dtype(np.float16): lib.TP_FLOAT16,
    np.dtype(ml_dtypes.bfloat16): lib.TP_BFLOAT16,
}
_local = threading.local()


def _workspace(nbytes):
    """A uint8 buffer of at least `nbytes`, reused by this Python thread (calls release the GIL,
    so two threads must never share one)."""
    buf = getattr(_local, "buf", None)
    if buf is None or buf.nbytes < nbytes:
        buf = np.empty(max(nbytes, 1 << 16), np.uint8)
        _local.buf = buf
    return buf


class SampleStats:
    """Sampled brackets that missed, over the calls of one `sampling` block."""

    def __init__(self):
        self.misses = 0


@contextlib.contextmanager
def sampling(width=None):
    """Within the block, this Python thread's top-k calls pass `sample_width=width` (standard
    deviations of the sampled paths' bracket; None the default, 0 makes them miss, negative
    turns them off) and add the misses C reports to the yielded SampleStats. Other threads are
    not affected."""
    before = getattr(_local, "sampling", None)
    stats = SampleStats()
    _local.sampling = (width, stats)
    try:
        yield stats
    finally:
        _local.sampling = before


def _tuning():
    """The options and stats pointers of one C call and the SampleStats to add its misses to
    (NULL, NULL, None outside a `sampling` block)."""
    current = getattr(_local, "sampling", None)
    if current is None:
        return ffi.NULL, ffi.NULL, None
    width, stats = current
    options = ffi.NULL
    if width is not None:
        options = ffi.new("tp_topk_options *")
        options.sample_width = width
    return options, ffi.new("tp_topk_stats *"), stats


def _count(stats_ptr, stats):
    if stats is not None:
        stats.misses += int(stats_ptr.sample_misses)


def candidate_capacity(total):
    """Candidates (elements near the threshold, collected for the exact selection) the
    workspace can hold: 1/32 of the data covers ordinary weight distributions on both the
    sampled path (~2% collected) and the histogram path (its top-digit bucket); more
    concentrated data costs an extra pass instead."""
    return int(min(total, max(65536, total // 32)))


def _ptr(a):
    return ffi.cast("void *", ffi.from_buffer(a, require_writable=False))


def topk_select(arrays, k, masks, packed=False, zero=False, isa=None):
    """Select the k largest magnitudes of the concatenation of `arrays` (same dtype); write
    `masks` (one per array; None for the threshold only); return the threshold's key bits."""
    dtype = _DTYPE_CODES[arrays[0].dtype]
    count = len(arrays)
    segs = ffi.new("tp_topk_segment[]", count)
    keep = []
    total = 0
    for i, a in enumerate(arrays):
        n = a.size
        segs[i].numel = n
        total += n
        if n:
            d = ffi.from_buffer(a)
            keep.append(d)
            segs[i].data = d
            if masks is not None:
                m = ffi.from_buffer(masks[i])
                keep.append(m)
                segs[i].mask = m
    flags = (lib.TP_TOPK_PACKED if packed else 0) | (lib.TP_TOPK_ZERO if zero else 0)
    if masks is None:
        flags |= lib.TP_TOPK_NO_MASK
    cap = candidate_capacity(total)
    nbytes = lib.tp_topk_workspace_bytes(dtype, total, cap)
    ws = _workspace(nbytes)
    key = ffi.new("uint64_t *")
    wsp = ffi.from_buffer(ws)
    options, stats_ptr, stats = _tuning()
    args = (segs, count, dtype, k, flags, wsp, ws.nbytes, cap, options, key, stats_ptr)
    status = lib.tp_topk_select_isa(*args, isa_code(isa))
    _count(stats_ptr, stats)
    check(status, "topk")
    return int(key[0])


def topk_rows(x, outer, length, inner, k, mask, thresholds=None, packed=False, zero=False,
              isa=None):
    """The selection in every slice of x viewed as (outer, length, inner); `mask` has x's
    layout (or is the packed bytes), `thresholds` (uint64, outer*inner, optional) receives each
    slice's threshold key bits."""
    dtype = _DTYPE_CODES[x.dtype]
    flags = (lib.TP_TOPK_PACKED if packed else 0) | (lib.TP_TOPK_ZERO if zero else 0)
    if mask is None:
        flags |= lib.TP_TOPK_NO_MASK
    nbytes = lib.tp_topk_rows_workspace_bytes(dtype, length)
    ws = _workspace(nbytes)
    xp = ffi.from_buffer(x) if x.size else ffi.NULL
    mp = ffi.from_buffer(mask) if mask is not None and mask.size else ffi.NULL
    tp = ffi.cast("uint64_t *", ffi.from_buffer(thresholds)) if thresholds is not None and thresholds.size else ffi.NULL
    options, stats_ptr, stats = _tuning()
    args = (xp, outer, length, inner, dtype, k, flags, mp, tp, ffi.from_buffer(ws), ws.nbytes,
            options, stats_ptr)
    status = lib.tp_topk_rows_isa(*args, isa_code(isa))
    _count(stats_ptr, stats)
    check(status, "topk")


def nm_mask(x, outer, length, inner, n, m, mask, isa=None):
    """N:M mask of x viewed as (outer, length, inner) into the bool array `mask`."""
    dtype = _DTYPE_CODES[x.dtype]
    xp = ffi.from_buffer(x) if x.size else ffi.NULL
    mp = ffi.cast("uint8_t *", ffi.from_buffer(mask)) if mask.size else ffi.NULL
    status = lib.tp_nm_mask_isa(xp, outer, length, inner, dtype, n, m, mp, isa_code(isa))
    check(status, "nm_mask")
