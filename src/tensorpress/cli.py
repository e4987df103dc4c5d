"""The `tensorpress` command line.

Exit codes: 0 success; 1 the input is damaged or not what its name says (CorruptDataError);
2 bad usage or options; 3 an operating-system error (missing file, permissions, full disk).
"""

import argparse
import json
import math
import os
import sys
import time

EXIT_OK, EXIT_DATA, EXIT_USAGE, EXIT_OS = 0, 1, 2, 3


def _bench(args):
    import importlib
    import platform

    import tensorpress as tp
    from tensorpress import _backend
    from tensorpress._bench import FAMILIES

    families = args.only or FAMILIES
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        print(f"tensorpress bench: unknown kernel family {', '.join(unknown)}; choose from {', '.join(FAMILIES)}", file=sys.stderr)
        return EXIT_USAGE
    if args.plot is not None:
        # Before minutes of measuring: fail now if the charts cannot be written.
        from tensorpress._bench import plot

        try:
            plot.pyplot()
        except plot.MissingMatplotlib as exc:
            print(f"tensorpress bench: --plot: {exc}", file=sys.stderr)
            return EXIT_USAGE
        os.makedirs(args.plot, exist_ok=True)
    isa = ""
    if "c" in _backend.available_backends():
        from tensorpress import _native

        isa = f", C variant {_native.current_isa()}, OpenMP {'on' if _native.openmp_enabled() else 'off'}"
    print(f"tensorpress {tp.__version__} bench{' --quick' if args.quick else ''}: backend {tp.backend}{isa}, "
          f"{tp.get_num_threads()} threads, {platform.machine()}, numpy {__import__('numpy').__version__}")
    charts = []
    for family in families:
        module = importlib.import_module(f"tensorpress._bench.{family}")
        # torch's OpenMP threads spin for a while after its last op; let them settle so they do
        # not slow the first timings of the next family.
        time.sleep(0.5)
        report = module.run(quick=args.quick, plot=args.plot is not None)
        print()
        print(report.text(), flush=True)
        if args.plot is not None:
            charts.append(plot.write_chart(report, args.plot))
    if charts:
        print()
        print("charts: " + ", ".join(path for path in charts if path))
    return EXIT_OK


def _progress(enabled, desc):
    """A wrapper that shows a tqdm bar on a terminal (when tqdm is installed), else nothing."""
    if not enabled or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return lambda iterable, total: tqdm(iterable, total=total, desc=desc, unit="tensor", leave=False)


def _size(nbytes):
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if nbytes < 1000 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000


def _record_stats(rec):
    """(elements, original bytes, stored bytes, relative RMS error or None) of a container record."""
    import numpy as np

    n = math.prod(rec.shape)
    source = rec.params.get("source_dtype", rec.dtype)
    try:
        itemsize = np.dtype(source).itemsize
    except TypeError:
        itemsize = 4
    err = rec.params.get("error")
    rel = None
    if isinstance(err, dict) and err.get("ref_rms"):
        rel = err["rms"] / err["ref_rms"]
    elif isinstance(err, dict):
        rel = 0.0
    return n, n * itemsize, rec.stored_bytes, rel


def _summary(recs, seconds, path_in, path_out, file_bytes):
    """The totals of a written file from its index (container.Record list)."""
    n = original = 0
    sq_err = sq_ref = 0.0
    max_rel = 0.0
    for rec in recs:
        elems, orig, _, _ = _record_stats(rec)
        n += elems
        original += orig
        err = rec.params.get("error")
        if isinstance(err, dict):
            sq_err += err["rms"] ** 2 * elems
            sq_ref += err["ref_rms"] ** 2 * elems
            if err["ref_max_abs"]:
                max_rel = max(max_rel, err["max_abs"] / err["ref_max_abs"])
    return {
        "input": os.fspath(path_in), "output": os.fspath(path_out), "tensors": len(recs),
        "weights": n, "input_bytes": original, "output_bytes": file_bytes,
        "ratio": original / file_bytes if file_bytes else None,
        "bits_per_weight": 8 * file_bytes / n if n else None,
        "seconds": seconds,
        "lossy_tensors": sum(1 for r in recs if "error" in r.params),
        "max_relative_error": max_rel,
        "rms_relative_error": math.sqrt(sq_err / sq_ref) if sq_ref else 0.0,
    }


def _compress(args):
    from tensorpress import checkpoints, container, pipeline

    start = time.perf_counter()
    if checkpoints.kind(args.output) != ".tpz":
        raise ValueError(f"{args.output}: compress writes .tpz files")
    tensors = checkpoints.read(args.input)
    # Records stream to the file as they are made: memory holds the input, not its compressed copy.
    records = pipeline.iter_records(
        tensors, sparsity=args.sparsity, bits=args.bits, axis=args.axis, block_size=args.block_size,
        keep_small=args.keep_small, keep=args.keep or (), threads=args.threads,
        progress=_progress(not args.json, "compress"))
    index = container.write_file(args.output, records)
    summary = _summary(index, time.perf_counter() - start, args.input, args.output,
                       os.path.getsize(args.output))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        s = summary
        print(f"{s['input']} -> {s['output']}: {s['tensors']} tensors, {s['weights']:,} weights, "
              f"{_size(s['input_bytes'])} -> {_size(s['output_bytes'])} ({s['ratio']:.2f}x, "
              f"{s['bits_per_weight']:.3f} bits/weight) in {s['seconds']:.2f} s")
        print(f"  {s['lossy_tensors']} tensors quantized: max relative error {s['max_relative_error']:.3g}, "
              f"RMS relative error {s['rms_relative_error']:.3g}")
    return EXIT_OK


def _decompress(args):
    from tensorpress import checkpoints, pipeline

    start = time.perf_counter()
    if checkpoints.kind(args.input) != ".tpz":
        raise ValueError(f"{args.input}: decompress reads .tpz files")
    tensors = pipeline.load(args.input, names=args.names)
    checkpoints.write(args.output, tensors)
    seconds = time.perf_counter() - start
    result = {"input": args.input, "output": args.output, "tensors": len(tensors),
              "output_bytes": os.path.getsize(args.output), "seconds": seconds}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.input} -> {args.output}: {len(tensors)} tensors, {_size(result['output_bytes'])} in {seconds:.2f} s")
    return EXIT_OK


def _info(args):
    from tensorpress import container

    with container.Reader(args.file) as reader:
        records = reader.records
    rows, total_n, total_orig, total_stored = [], 0, 0, 0
    for rec in records:
        n, orig, stored, rel = _record_stats(rec)
        total_n, total_orig, total_stored = total_n + n, total_orig + orig, total_stored + stored
        rows.append({"name": rec.name, "shape": list(rec.shape), "codec": rec.codec,
                     "stored_bytes": stored, "bits_per_weight": 8 * stored / n if n else None,
                     "ratio": orig / stored if stored else None, "rms_relative_error": rel})
    file_bytes = os.path.getsize(args.file)
    totals = {"tensors": len(rows), "weights": total_n, "file_bytes": file_bytes,
              "bits_per_weight": 8 * file_bytes / total_n if total_n else None,
              "ratio": total_orig / file_bytes if file_bytes else None}
    if args.json:
        print(json.dumps({"file": args.file, "tensors": rows, "total": totals}, indent=2))
        return EXIT_OK
    from tensorpress._bench.timing import format_table

    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    table = [[r["name"], "x".join(map(str, r["shape"])) or "scalar", r["codec"], f"{r['stored_bytes']:,}",
              fmt(r["bits_per_weight"], ".3f"), fmt(r["ratio"], ".2f"), fmt(r["rms_relative_error"], ".2e")]
             for r in rows]
    print(format_table(f"{args.file}: {len(rows)} tensors, {total_n:,} weights, {_size(file_bytes)}, "
                       f"{fmt(totals['bits_per_weight'], '.3f')} bits/weight, {fmt(totals['ratio'], '.2f')}x",
                       ["tensor", "shape", "codec", "bytes", "bits/weight", "ratio", "RMS rel. error"], table))
    return EXIT_OK


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tensorpress",
        description="Compiled CPU kernels for training and shrinking neural-network weights.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bench = sub.add_parser(
        "bench",
        help="measure the kernels against naive NumPy, torch and the memory-bandwidth bound",
        description="Measure every kernel family on this machine and print one table per family: "
        "elements per second, the ratio to naive NumPy and to torch (when installed), and the share "
        "of the memory-bandwidth bound that the bench measures itself in the same run.",
    )
    bench.add_argument("--quick", action="store_true", help="fewer, smaller cases (a few seconds per family)")
    bench.add_argument("--only", nargs="+", metavar="FAMILY", help="run only these kernel families")
    bench.add_argument("--plot", metavar="DIR", help="also write PNG charts into DIR (created if missing): "
                       "throughput against size per kernel family, and the pipeline's size / error "
                       "trade-off over sparsity; measures a few more sizes for them; needs matplotlib "
                       '(pip install "tensorpress[plot]")')
    bench.set_defaults(run=_bench)

    comp = sub.add_parser(
        "compress", help="prune, quantize and Huffman-code a checkpoint into a .tpz file",
        description="Deep Compression of a checkpoint: per large floating-point tensor, magnitude "
        "pruning to --sparsity, symmetric int8 quantization per output channel, Huffman coding of "
        "the values (and of the gaps between nonzeros when that is smaller). Small, non-float and "
        "--keep tensors are stored losslessly. The output is written atomically.")
    comp.add_argument("input", help="checkpoint to read: .safetensors, .npz or .tpz")
    comp.add_argument("-o", "--output", required=True, help="the .tpz file to write")
    comp.add_argument("--sparsity", type=float, default=0.0, help="fraction of each large tensor's weights set to zero, in [0, 1) (default 0)")
    comp.add_argument("--bits", type=int, default=8, help="quantization width, 2 to 8 (default 8)")
    comp.add_argument("--axis", type=int, default=0, help="output-channel axis that gets one scale per channel (default 0)")
    comp.add_argument("--block-size", type=int, default=None, help="one scale per block of this many elements along the last axis instead of per channel")
    comp.add_argument("--keep", nargs="+", metavar="NAME", help="tensors to store losslessly")
    comp.add_argument("--keep-small", type=int, default=1024, help="store tensors with fewer elements than this losslessly (default 1024)")
    comp.add_argument("--threads", type=int, default=None, help="tensors compressed in parallel (default: cores, at most 8)")
    comp.add_argument("--json", action="store_true", help="print a machine-readable summary")
    comp.set_defaults(run=_compress)

    dec = sub.add_parser("decompress", help="turn a .tpz file back into .safetensors or .npz",
                         description="Decode a .tpz file (all tensors, or --names) and write them, atomically.")
    dec.add_argument("input", help="the .tpz file to read")
    dec.add_argument("-o", "--output", required=True, help="file to write: .safetensors or .npz")
    dec.add_argument("--names", nargs="+", metavar="NAME", help="decode only these tensors")
    dec.add_argument("--json", action="store_true", help="print a machine-readable summary")
    dec.set_defaults(run=_decompress)

    info = sub.add_parser("info", help="show what a .tpz file holds and what each tensor costs",
                          description="One row per tensor: shape, codec, stored bytes, bits per weight, "
                          "compression ratio and the RMS relative error recorded at compression.")
    info.add_argument("file", help="the .tpz file")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(run=_info)
    return parser


def main(argv=None):
    from tensorpress.errors import CorruptDataError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except CorruptDataError as exc:
        print(f"tensorpress {args.command}: damaged input: {exc}", file=sys.stderr)
        return EXIT_DATA
    except (ValueError, TypeError, KeyError) as exc:
        print(f"tensorpress {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"tensorpress {args.command}: {exc}", file=sys.stderr)
        return EXIT_OS


if __name__ == "__main__":
    sys.exit(main())
