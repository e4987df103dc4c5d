"""Lossless benchmark: tensorpress's float codec beside ZipNN and zstd (levels 3 and 19) on
all-MiniLM-L6-v2's weights as shipped (float32) and cast to bfloat16 and float16, as one
buffer of every float tensor in file order (what a file-level compressor sees).

Columns: compression ratio, its distance to the order-0 entropy bound of the byte planes (each
plane of the whole buffer coded at its own entropy, the sign bit moved next to the mantissa as
the codec does), and compress / decompress MB/s of the uncompressed bytes at 1 and 2 threads,
with ratios to ZipNN at the same thread count. Peers are used only when installed (never
dependencies): `pip install zipnn zstandard`. ZipNN's compress() overwrites its input, so it
is timed on a fresh copy, and the copy's own time is subtracted.

--quick: the first 2M elements, no zstd -19 and no ZipNN (its first call compiles).
"""

import os

import numpy as np

from .. import _backend
from .._threads import get_num_threads, set_num_threads
from ..huffman import entropy_bits
from . import pipeline as checkpoint_source  # its load_checkpoint: the real model, or its shapes
from .report import Report, speedup
from .timing import best_times

QUICK_N = 1 << 21


def _bf16():
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16)


def _weights(quick):
    label, tensors = checkpoint_source.load_checkpoint()
    flat = np.concatenate([t.reshape(-1) for t in tensors.values() if t.dtype == np.float32])
    if quick:
        flat = flat[:QUICK_N]
    return label, {"float32": flat, "bfloat16": flat.astype(_bf16()), "float16": flat.astype(np.float16)}


def plane_bound(x):
    """Bytes of x's byte planes (bits rotated left by one) at their order-0 entropy."""
    width = x.dtype.itemsize
    bits = x.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[width])
    r = (bits << bits.dtype.type(1)) | (bits >> bits.dtype.type(8 * width - 1))
    return sum(entropy_bits(((r >> r.dtype.type(8 * p)) & r.dtype.type(255)).astype(np.uint8))
               for p in range(width)) / 8


def _zipnn(dtype_name, threads):
    try:
        import zipnn
    except ImportError:
        return None
    return zipnn.ZipNN(input_format="byte", bytearray_dtype=dtype_name, threads=threads)


def _zstd(level, threads):
    try:
        import zstandard
    except ImportError:
        return None
    # zstd compresses with worker threads (threads=0: in the calling thread); it decompresses
    # in one thread whatever the setting
    return (zstandard.ZstdCompressor(level=level, threads=threads if threads > 1 else 0),
            zstandard.ZstdDecompressor())


def _codec_calls(kernels, x):
    """(compress, decompress, compressed size) of one backend's float codec on x, as
    float_encode / float_decode run it: the new bytes object and the new array included."""
    from .. import floatcodec

    flat = floatcodec._bits_view(x)
    code = floatcodec._DTYPE_CODES[x.dtype]
    chunk = floatcodec._CHUNK_LOG2[x.dtype.name]
    blob = kernels.encode(flat, code, x.shape, chunk)
    data = np.frombuffer(blob, np.uint8)

    def decompress():
        out = np.empty_like(flat)
        kernels.decode(data, out)
        return out

    assert decompress().tobytes() == x.tobytes()
    return (lambda: bytes(kernels.encode(flat, code, x.shape, chunk))), decompress, len(blob)


def _cli_note(label, nbytes):
    """The whole `tensorpress compress --lossless` command on the bfloat16 checkpoint written as
    a .safetensors file (interpreter start, imports, reading, coding, the atomic write): best of
    three runs after a first one. Bytecode is cached for the runs (in a temporary
    pycache_prefix, PYTHONDONTWRITEBYTECODE dropped) as an installed package has it: an
    editable install under PYTHONDONTWRITEBYTECODE would compile every module at each start."""
    import subprocess
    import sys
    import tempfile
    import time

    from .. import checkpoints

    _, tensors = checkpoint_source.load_checkpoint()
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "model.safetensors"), os.path.join(tmp, "model.tpz")
        checkpoints.write(src, {k: v.astype(_bf16()) for k, v in tensors.items() if v.dtype == np.float32})
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        command = [sys.executable, "-X", f"pycache_prefix={os.path.join(tmp, 'pycache')}", "-m",
                   "tensorpress", "compress", src, "-o", out, "--lossless"]
        best = float("inf")
        for run in range(4):  # the first run writes the bytecode cache
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            if run:
                best = min(best, time.perf_counter() - start)
            if done.returncode:
                return f"tensorpress compress --lossless failed: {done.stderr.strip()}"
        ratio = os.path.getsize(src) / os.path.getsize(out)
    return (f"the whole command `tensorpress compress model.safetensors -o model.tpz --lossless` on "
            f"{label} in bfloat16 ({nbytes / 1e6:.1f} MB of weights, bytecode cached): {best:.2f} s, "
            f"{ratio:.3f}x")


def run(quick=False, plot=False):
    label, arrays = _weights(quick)
    n = arrays["float32"].size
    threads_before = get_num_threads()
    thread_counts = [1, 2] if (os.cpu_count() or 1) >= 2 else [1]
    report = Report(
        "lossless",
        f"Lossless compression of {label}, {n} weights as one buffer (ratio = original / "
        "compressed; MB/s of original bytes; 'vs ZipNN' at the same thread count)",
        ["lossless", "dtype", "thr", "ratio", "vs bound", "comp MB/s", "dec MB/s",
         "comp vs ZipNN", "dec vs ZipNN"],
        ["{}", "{}", "{}", "{:.4f}", "{:+.2f}%", "{:.0f}", "{:.0f}", "{:.2f}x", "{:.2f}x"])
    backends = _backend.available_backends()
    try:
        for dtype_name, x in arrays.items():
            raw = x.tobytes()
            bound = plane_bound(x)
            report.rows.append(["order-0 bound of the byte planes", dtype_name, None,
                                x.nbytes / bound, 0.0, None, None, None, None])
            for threads in thread_counts:
                set_num_threads(threads)
                fns, sizes = {}, {}
                for backend in backends:
                    if backend == "numba" and threads != threads_before:
                        continue  # the Numba twin at the session's thread count only
                    comp, dec, size = _codec_calls(_backend.kernels_of(backend, "floatcodec"), x)
                    name = "tensorpress C" if backend == "c" else "tensorpress Numba"
                    fns[name, "comp"], fns[name, "dec"], sizes[name] = comp, dec, size
                zipnn = None if quick else _zipnn(dtype_name, threads)
                copy_time = None
                if zipnn is not None:
                    zblob = zipnn.compress(bytearray(raw))
                    assert bytes(zipnn.decompress(zblob)) == raw
                    fns["ZipNN", "comp"] = lambda z=zipnn, raw=raw: z.compress(bytearray(raw))
                    fns["ZipNN", "dec"] = lambda z=zipnn, b=zblob: z.decompress(b)
                    fns["copy", "comp"] = lambda raw=raw: bytearray(raw)
                    sizes["ZipNN"] = len(zblob)
                for level in (3,) if quick or threads > 1 else (3, 19):
                    zstd = _zstd(level, threads)
                    if zstd is None:
                        continue
                    zc, zd = zstd
                    zblob_s = zc.compress(raw)
                    name = f"zstd -{level}"
                    fns[name, "comp"] = (lambda zc=zc, raw=raw: zc.compress(raw))
                    fns[name, "dec"] = (lambda zd=zd, b=zblob_s: zd.decompress(b))
                    sizes[name] = len(zblob_s)
                slow = {k for k in fns if k[0] == "zstd -19"}
                # 9 rounds: with 5, two runs of one build on this shared machine gave ratios to
                # ZipNN a third apart (a neighbour's burst can cover every round of one column)
                seconds = best_times({k: f for k, f in fns.items() if k not in slow},
                                     repeat=3 if quick else 9, min_time=0.05)
                if slow:  # tens of seconds a call: one round
                    seconds.update(best_times({k: fns[k] for k in slow}, repeat=1, min_time=0))
                if ("copy", "comp") in seconds:
                    copy_time = seconds.pop(("copy", "comp"))
                    seconds["ZipNN", "comp"] = max(seconds["ZipNN", "comp"] - copy_time, 1e-9)
                peer = ("ZipNN", "comp") in seconds
                for name, size in sizes.items():
                    comp, dec = seconds[name, "comp"], seconds[name, "dec"]
                    report.rows.append([
                        name, dtype_name, threads, x.nbytes / size, 100 * (size / bound - 1),
                        x.nbytes / comp / 1e6, x.nbytes / dec / 1e6,
                        speedup(comp, seconds["ZipNN", "comp"]) if peer else None,
                        speedup(dec, seconds["ZipNN", "dec"]) if peer else None])
    finally:
        set_num_threads(threads_before)
    report.notes.append("vs bound: how far the compressed size is from the byte planes' order-0 "
                        "bound (+: larger than the bound). zstd decompresses in one thread.")
    if not quick and "c" in backends:
        report.notes.append(_cli_note(label, arrays["bfloat16"].nbytes))
    if quick:
        report.notes.append("--quick: ZipNN and zstd -19 left out")
    return report
