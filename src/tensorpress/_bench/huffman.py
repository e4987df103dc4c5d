"""Huffman benchmark: tensorpress (C on 1 and 2 threads, Numba) beside zlib's Huffman-only
mode, on int8 Gaussian weights (round(N(0,1) * 32), clipped), in MB/s of symbols, with the
compressed size against the order-0 entropy.

Two clocks: wall time (best of several rounds) and, for single-threaded rows, the process's
CPU time (also best of rounds), which other processes on a busy machine inflate less. Ratios
to zlib compare rows measured in the same run with the same clock.
"""

import os
import time
import zlib

import numpy as np

from .. import _backend
from .._threads import get_num_threads, set_num_threads
from .report import Report, Series, speedup
from .timing import best_time


def gaussian_int8(n, seed=0):
    x = np.random.default_rng(seed).standard_normal(n) * 32.0
    return np.clip(np.round(x), -128, 127).astype(np.int8)


def cpu_best_time(fn, *, repeat=5, min_time=0.02):
    """best_time with process CPU time (meaningful for one thread only)."""
    return best_time(fn, repeat=repeat, min_time=min_time, clock=time.process_time)


def _raw_c_calls(flat, shape, blob, out):
    """The C encode / decode calls alone, with every buffer allocated once (no allocation,
    page faults or copy to bytes inside the timed call)."""
    from .._native import ffi, lib

    n = flat.size
    cap = lib.tp_huffman_bound(n, len(shape), lib.TP_HUFFMAN_BLOCK_LOG2)
    dst = np.empty(cap, np.uint8)
    dst[:] = 0
    ws = np.zeros((lib.tp_huffman_workspace_size(n, lib.TP_HUFFMAN_BLOCK_LOG2) + 7) // 8 + 1, np.uint64)
    src_p, dst_p = ffi.from_buffer("uint8_t[]", flat), ffi.from_buffer("uint8_t[]", dst)
    ws_p, shape_p = ffi.from_buffer(ws), ffi.new("int64_t[]", list(shape))
    written = ffi.new("int64_t *")
    blob_p, out_p = ffi.from_buffer("uint8_t[]", blob), ffi.from_buffer("uint8_t[]", out)

    def encode():
        lib.tp_huffman_encode(src_p, n, 1, len(shape), shape_p, lib.TP_HUFFMAN_BLOCK_LOG2,
                              dst_p, cap, ws_p, ws.nbytes, written)

    def decode():
        lib.tp_huffman_decode(blob_p, blob.size, out_p, n)

    return encode, decode


def _zlib_encode(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_HUFFMAN_ONLY)
    return c.compress(data) + c.flush()


def _measure(encode, decode, cpu):
    """(encode seconds, decode seconds) on the wall clock, and on the CPU clock when `cpu`."""
    wall = (best_time(encode), best_time(decode))
    return wall, ((cpu_best_time(encode), cpu_best_time(decode)) if cpu else (None, None))


def _size(n):
    return f"{n >> 20}M" if n >= 1 << 20 else f"{n >> 10}K"


def _mbs(n, seconds):
    """MB/s of n symbols, or None."""
    return n / seconds / 1e6 if seconds else None


QUICK_N, FULL_N = 1 << 19, 16 << 20
FULL_SWEEP, QUICK_SWEEP = [1 << e for e in range(12, 24, 2)], [1 << 12, 1 << 16]  # --plot, below n


def run(quick=False, plot=False):
    """The Huffman report; with `plot`, also encode / decode speed over smaller sizes."""
    n = QUICK_N if quick else FULL_N
    x = gaussian_int8(n)
    raw = x.tobytes()
    threads_before = get_num_threads()
    from ..huffman import entropy_bits

    entropy = entropy_bits(x) / n
    report = Report(
        "huffman",
        f"Huffman coding, {n} int8 symbols, entropy {entropy:.4f} bits/symbol "
        "(MB/s of symbols; 'cpu' columns use process CPU time)",
        ["huffman (int8 N(0,32))", "thr", "enc MB/s", "dec MB/s", "enc cpu", "dec cpu",
         "enc/zlib", "dec/zlib", "enc/zlib cpu", "dec/zlib cpu", "bits/sym", "vs entropy"],
        ["{}", "{}", "{:.0f}", "{:.0f}", "{:.0f}", "{:.0f}", "{:.1f}x", "{:.1f}x", "{:.1f}x", "{:.1f}x",
         "{:.4f}", "{:+.2f}%"],
        chart_title="Huffman coding of int8 N(0, 32) symbols", xlabel="int8 symbols", ylabel="MB/s of symbols")
    walls = {}  # (chart line, size) -> wall (encode, decode) seconds, for the charts

    zblob = _zlib_encode(raw)
    z_wall, z_cpu = _measure(lambda: _zlib_encode(raw), lambda: zlib.decompress(zblob, -15), not quick)

    def add(label, kernels, threads, data, cpu, preallocated=False, line=None):
        cpu = cpu and not quick  # --quick: wall clock only
        set_num_threads(threads)
        flat = data.reshape(-1).view(np.uint8)
        blob = kernels.encode(flat, 1, data.shape)
        encode, decode = _calls(kernels, flat, data.shape, blob, preallocated)
        wall, cpu_t = _measure(encode, decode, cpu)
        if line:
            walls[line, data.size] = wall
        bits = 8 * len(blob) / data.size
        report.rows.append([label, threads, _mbs(data.size, wall[0]), _mbs(data.size, wall[1]),
                            _mbs(data.size, cpu_t[0]), _mbs(data.size, cpu_t[1]),
                            speedup(wall[0] * n / data.size, z_wall[0]), speedup(wall[1] * n / data.size, z_wall[1]),
                            speedup(cpu_t[0] and cpu_t[0] * n / data.size, z_cpu[0]),
                            speedup(cpu_t[1] and cpu_t[1] * n / data.size, z_cpu[1]),
                            bits, 100 * (bits / entropy - 1)])
        return wall, cpu_t

    small = None
    lines = {}  # chart line -> (kernels, threads, preallocated)
    two_threads = (os.cpu_count() or 1) >= 2
    try:
        backends = _backend.available_backends()
        if "c" in backends:
            c = _backend.kernels_of("c", "huffman")
            lines["C kernel, 1 thread"] = (c, 1, True)
            big_wall, big_cpu = add(f"C kernel, {_size(n)}", c, 1, x, True, True, "C kernel, 1 thread")
            if two_threads:
                lines["C kernel, 2 threads"] = (c, 2, True)
                add(f"C kernel, {_size(n)}", c, 2, x, False, True, "C kernel, 2 threads")
            if not quick:
                add(f"C via Python API, {_size(n)}", c, 1, x, True)
            small_wall, small_cpu = add("C kernel, 64 KiB", c, 1, x[:65536], True, True, "C kernel, 1 thread")
            small = [
                (small_wall[0] / 65536) / (big_wall[0] / n), (small_wall[1] / 65536) / (big_wall[1] / n),
                (small_cpu[0] / 65536) / (big_cpu[0] / n) if big_cpu[0] else 0.0,
                (small_cpu[1] / 65536) / (big_cpu[1] / n) if big_cpu[1] else 0.0,
            ]
        if "numba" in backends:
            line = f"Numba, {threads_before} thread{'s' if threads_before > 1 else ''}"
            lines[line] = (_backend.kernels_of("numba", "huffman"), threads_before, False)
            add(f"Numba, {_size(n)}", lines[line][0], threads_before, x, threads_before == 1, line=line)
        if plot:
            walls["zlib Z_HUFFMAN_ONLY", n] = z_wall
            report.series = _sweep(QUICK_SWEEP if quick else FULL_SWEEP, lines, walls)
    finally:
        set_num_threads(threads_before)
    zbits = 8 * len(zblob) / n
    report.rows.append(["zlib Z_HUFFMAN_ONLY", 1, _mbs(n, z_wall[0]), _mbs(n, z_wall[1]),
                        _mbs(n, z_cpu[0]), _mbs(n, z_cpu[1]), 1.0, 1.0,
                        1.0 if z_cpu[0] else None, 1.0 if z_cpu[1] else None,
                        zbits, 100 * (zbits / entropy - 1)])
    if small:
        note = (f"C kernel, 64 KiB call vs the {_size(n)} call, per-byte cost: "
                f"encode {small[0]:.2f}x, decode {small[1]:.2f}x (wall)")
        if small[2]:
            note += f"; encode {small[2]:.2f}x, decode {small[3]:.2f}x (cpu)"
        report.notes.append(note)
    return report


def _calls(kernels, flat, shape, blob, preallocated):
    """(encode, decode) callables of one backend's kernels on `flat`, checked to round-trip."""
    arr = np.frombuffer(blob, np.uint8)
    out = np.empty_like(flat)
    kernels.decode(arr, out)
    assert np.array_equal(out, flat)
    if preallocated:
        return _raw_c_calls(flat, shape, arr, out)
    return lambda: kernels.encode(flat, 1, shape), lambda: kernels.decode(arr, out)


def _sweep(sizes, lines, walls):
    """Encode and decode series (wall clock) of every line over `sizes` and the sizes the table
    measured (`walls`: (line, size) -> (encode, decode) seconds, extended here)."""
    for size in sizes:
        data = gaussian_int8(size)
        for line, (kernels, threads, preallocated) in lines.items():
            if (line, size) not in walls:
                set_num_threads(threads)
                flat = data.view(np.uint8)
                walls[line, size] = _measure(*_calls(kernels, flat, data.shape, kernels.encode(flat, 1, data.shape),
                                                     preallocated), False)[0]
        if ("zlib Z_HUFFMAN_ONLY", size) not in walls:
            raw = data.tobytes()
            zblob = _zlib_encode(raw)
            walls["zlib Z_HUFFMAN_ONLY", size] = _measure(lambda: _zlib_encode(raw),
                                                         lambda: zlib.decompress(zblob, -15), False)[0]
    series = []
    for k, panel in enumerate(("encode", "decode")):
        for line in [*lines, "zlib Z_HUFFMAN_ONLY"]:
            xs = sorted(size for name, size in walls if name == line)
            series.append(Series(line, xs, [_mbs(size, walls[line, size][k]) for size in xs], panel=panel,
                                 dashed=line.startswith("zlib")))
    return series
