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
from .timing import best_time, format_table


def gaussian_int8(n, seed=0):
    x = np.random.default_rng(seed).standard_normal(n) * 32.0
    return np.clip(np.round(x), -128, 127).astype(np.int8)


def cpu_best_time(fn, *, repeat=5, min_time=0.02):
    """Like best_time, with process CPU time (meaningful for one thread only)."""
    fn()
    best = None
    for _ in range(repeat):
        calls, start = 0, time.process_time()
        while True:
            fn()
            calls += 1
            elapsed = time.process_time() - start
            if elapsed >= min_time:
                break
        best = elapsed / calls if best is None else min(best, elapsed / calls)
    return best


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
    return "-" if not seconds else f"{n / seconds / 1e6:.0f}"


def _x(ours, theirs):
    return "-" if not ours or not theirs else f"{theirs / ours:.1f}x"


def run(quick=False):
    n = 1 << 19 if quick else 16 << 20
    x = gaussian_int8(n)
    raw = x.tobytes()
    threads_before = get_num_threads()
    rows = []
    from ..huffman import entropy_bits

    entropy = entropy_bits(x) / n

    zblob = _zlib_encode(raw)
    z_wall, z_cpu = _measure(lambda: _zlib_encode(raw), lambda: zlib.decompress(zblob, -15), not quick)

    def add(label, kernels, threads, data, cpu, preallocated=False):
        cpu = cpu and not quick  # --quick: wall clock only
        set_num_threads(threads)
        flat = data.reshape(-1).view(np.uint8)
        blob = kernels.encode(flat, 1, data.shape)
        arr = np.frombuffer(blob, np.uint8)
        out = np.empty_like(flat)
        kernels.decode(arr, out)
        assert np.array_equal(out, flat)
        if preallocated:
            encode, decode = _raw_c_calls(flat, data.shape, arr, out)
        else:
            encode, decode = (lambda: kernels.encode(flat, 1, data.shape),
                              lambda: kernels.decode(arr, out))
        wall, cpu_t = _measure(encode, decode, cpu)
        bits = 8 * len(blob) / data.size
        rows.append([label, str(threads), _mbs(data.size, wall[0]), _mbs(data.size, wall[1]),
                     _mbs(data.size, cpu_t[0]), _mbs(data.size, cpu_t[1]),
                     _x(wall[0] * n / data.size, z_wall[0]), _x(wall[1] * n / data.size, z_wall[1]),
                     _x(cpu_t[0] and cpu_t[0] * n / data.size, z_cpu[0]),
                     _x(cpu_t[1] and cpu_t[1] * n / data.size, z_cpu[1]),
                     f"{bits:.4f}", f"{100 * (bits / entropy - 1):+.2f}%"])
        return wall, cpu_t

    small = None
    try:
        backends = _backend.available_backends()
        if "c" in backends:
            c = _backend.kernels_of("c", "huffman")
            big_wall, big_cpu = add(f"C kernel, {_size(n)}", c, 1, x, True, True)
            if (os.cpu_count() or 1) >= 2:
                add(f"C kernel, {_size(n)}", c, 2, x, False, True)
            if not quick:
                add(f"C via Python API, {_size(n)}", c, 1, x, True)
            small_wall, small_cpu = add("C kernel, 64 KiB", c, 1, x[:65536], True, True)
            small = [
                (small_wall[0] / 65536) / (big_wall[0] / n), (small_wall[1] / 65536) / (big_wall[1] / n),
                (small_cpu[0] / 65536) / (big_cpu[0] / n) if big_cpu[0] else 0.0,
                (small_cpu[1] / 65536) / (big_cpu[1] / n) if big_cpu[1] else 0.0,
            ]
        if "numba" in backends:
            add(f"Numba, {_size(n)}", _backend.kernels_of("numba", "huffman"),
                threads_before, x, threads_before == 1)
    finally:
        set_num_threads(threads_before)
    zbits = 8 * len(zblob) / n
    rows.append(["zlib Z_HUFFMAN_ONLY", "1", _mbs(n, z_wall[0]), _mbs(n, z_wall[1]),
                 _mbs(n, z_cpu[0]), _mbs(n, z_cpu[1]), "1.0x", "1.0x",
                 "1.0x" if z_cpu[0] else "-", "1.0x" if z_cpu[1] else "-",
                 f"{zbits:.4f}", f"{100 * (zbits / entropy - 1):+.2f}%"])
    headers = ["huffman (int8 N(0,32))", "thr", "enc MB/s", "dec MB/s", "enc cpu", "dec cpu",
               "enc/zlib", "dec/zlib", "enc/zlib cpu", "dec/zlib cpu", "bits/sym", "vs entropy"]
    title = (f"Huffman coding, {n} int8 symbols, entropy {entropy:.4f} bits/symbol "
             "(MB/s of symbols; 'cpu' columns use process CPU time)")
    text = format_table(title, headers, rows)
    if small:
        text += (f"\nC kernel, 64 KiB call vs the {_size(n)} call, per-byte cost: "
                 f"encode {small[0]:.2f}x, decode {small[1]:.2f}x (wall)")
        if small[2]:
            text += f"; encode {small[2]:.2f}x, decode {small[3]:.2f}x (cpu)"
    return text
