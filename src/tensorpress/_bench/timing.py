"""Timing helpers shared by the benchmark families: best-of timing, the measured bandwidth
bound, and the table layout (report.py holds the results themselves)."""

import contextlib
import time

import numpy as np


def _calls_for(fn, min_time, max_calls, clock):
    """Calls of fn() that one timed round needs to last min_time (fn warmed up first)."""
    fn()
    calls = 1
    while calls < max_calls:
        start = clock()
        for _ in range(calls):
            fn()
        elapsed = clock() - start
        if elapsed >= min_time:
            break
        calls = min(max_calls, calls * 2 if elapsed <= 0 else max(calls * 2, int(calls * min_time / elapsed) + 1))
    return calls


def best_times(fns, *, contexts=None, repeat=5, min_time=0.02, max_calls=100000, settle=0.03,
               clock=time.perf_counter):
    """Best seconds per call of each fn in the dict `fns` (None values are skipped), measured
    side by side: round r of every fn runs before round r + 1 of any, so a machine that slows
    down or speeds up during the run moves all of them alike and their ratios stay honest.
    After each round the run pauses `settle` seconds: a peer's OpenMP threads (torch's) keep
    spinning for a while after its last parallel region and would slow the next fn timed.
    contexts: key -> a context manager factory entered around each of that fn's rounds (e.g.
    routing the public API to one backend), so its cost stays out of the calls timed.
    clock: time.perf_counter (wall) or time.process_time (CPU time, for one-thread calls)."""
    live = {key: fn for key, fn in fns.items() if fn is not None}
    contexts = contexts or {}
    around = lambda key: contexts[key]() if key in contexts else contextlib.nullcontext()
    calls = {}
    for key, fn in live.items():
        with around(key):
            calls[key] = _calls_for(fn, min_time, max_calls, clock)
        time.sleep(settle)
    best = {key: float("inf") for key in live}
    for _ in range(repeat):
        for key, fn in live.items():
            with around(key):
                start = clock()
                for _ in range(calls[key]):
                    fn()
                best[key] = min(best[key], (clock() - start) / calls[key])
            time.sleep(settle)
    return {key: best.get(key) for key in fns}


def stream_probe(n, reads, writes, *, in_place=False):
    """A zero-argument function that runs the C streaming probe once over n elements (see
    bound_seconds), or None without the C extension."""
    try:
        from .._native import ffi, lib
    except ImportError:
        return None
    inputs = [np.random.default_rng(k).random(n, dtype=np.float32) for k in range(reads)]
    outputs = inputs[:writes] if in_place else [np.empty(n, np.float32) for _ in range(writes)]
    in_ptrs = ffi.new("float *[]", [ffi.cast("float *", ffi.from_buffer(a)) for a in inputs])
    out_ptrs = ffi.new("float *[]", [ffi.cast("float *", ffi.from_buffer(a)) for a in outputs])
    keep = (inputs, outputs, in_ptrs, out_ptrs)  # the arrays live as long as the function
    return lambda keep=keep: lib.tp_stream_probe(keep[2], reads, keep[3], writes, n)


def best_time(fn, *, repeat=5, min_time=0.02, max_calls=100000, clock=time.perf_counter):
    """Best seconds per call of fn() over `repeat` rounds, each round long enough to time."""
    return best_times({"fn": fn}, repeat=repeat, min_time=min_time, max_calls=max_calls,
                      settle=0, clock=clock)["fn"]


_bound_cache = {}


def bound_seconds(n, reads, writes, *, in_place=False, repeat=5):
    """Seconds the C streaming probe takes to read `reads` and write `writes` float32 streams
    of n elements with all threads: the best any kernel moving those bytes can do here.
    With `in_place`, the written streams are the first read ones (a kernel that updates its
    inputs, like Adam); otherwise they are separate arrays, and plain stores then also read
    each written line first. None without the C extension."""
    key = (n, reads, writes, in_place)
    if key in _bound_cache:
        return _bound_cache[key]
    probe = stream_probe(n, reads, writes, in_place=in_place)
    if probe is None:
        return None
    seconds = best_time(probe, repeat=repeat)
    _bound_cache[key] = seconds
    return seconds


def format_table(title, headers, rows):
    """A plain-text table: title line, header, rule, rows (all cells str)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    out = [title, line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


@contextlib.contextmanager
def routed_to(module, family, backend):
    """Route a public module's calls (e.g. tensorpress.optim) through one backend's kernels of
    `family`; the public wrapper, with its checks, stays in the timed path."""
    from .. import _backend

    saved = module._kernels
    module._kernels = _backend.kernels_of(backend, family)
    try:
        yield
    finally:
        module._kernels = saved


MMAP_THRESHOLD_MAX = 32 << 20  # glibc's: any larger block is mapped fresh, and unmapped when freed


def heap_room(shapes, count=12):
    """Blocks for the caller to free once it has allocated its arrays: room in the heap below
    them for a naive step's float32 temporaries. glibc gives the free memory at the top of its
    heap back to the OS, so without room below, each call's temporaries fault their pages in
    anew (3 to 7x slower at 64K to 1M elements), or not, by what the process freed before; a
    NumPy user's long-running loop reuses them. Blocks past MMAP_THRESHOLD_MAX are mapped
    fresh on every call in any process, so no room is kept for them."""
    return [np.empty(s, np.float32) for s in shapes if 4 * int(np.prod(s)) < MMAP_THRESHOLD_MAX
            for _ in range(count)]
