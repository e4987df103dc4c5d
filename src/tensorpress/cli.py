"""The `tensorpress` command line.

Every failure prints one line to stderr, `tensorpress COMMAND: error: FILE: what went wrong`,
and exits with one of the codes below (EXIT_HELP repeats them in --help). No input, however
damaged, makes it print a traceback: the readers raise CorruptDataError for whatever a damaged
file makes their libraries raise, and main() maps the package's errors and OSError to codes.
Other exceptions are bugs and keep their traceback.
"""

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import textwrap
import threading
import time

EXIT_OK, EXIT_DATA, EXIT_USAGE, EXIT_OS = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM  # the shell's convention

EXIT_HELP = """exit status:
  0    success
  1    the input cannot be used: damaged, truncated, not the format its name says, or holding
       tensors that cannot be processed (a dtype, NaN, a --names entry the file lacks)
  2    usage: a missing or unknown argument, an option value out of range, an unsupported
       file extension
  3    the operating system refused: a missing file, permissions, a full disk
  130  interrupted (Ctrl-C); 143 terminated (SIGTERM). An unfinished output is never left
       behind: the previous file at that path (the previous shards in a directory), if any, is
       kept as it was."""


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


def _number(value):
    """`value` as a finite float, else None: a record's optional statistics may be missing or,
    in a damaged file, any JSON value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _ratio(a, b):
    """a / b, or None when b is 0 or the quotient is no float (a forged shape's element count)."""
    if not b:
        return None
    try:
        return _number(a / b)
    except OverflowError:
        return None


def _itemsize(dtype):
    import numpy as np

    try:
        return np.dtype(dtype).itemsize if isinstance(dtype, str) else 4
    except (TypeError, UnicodeEncodeError):  # not a dtype NumPy knows ('\ud800' cannot even be
        return 4                             # encoded): count 4 bytes, the usual float32


def _record_stats(rec):
    """(elements, original bytes, stored bytes, relative RMS error or None) of a container record."""
    n = math.prod(rec.shape)
    itemsize = _itemsize(rec.params.get("source_dtype", rec.dtype))
    err = rec.params.get("error")
    rel = None
    if isinstance(err, dict):
        rms, ref = _number(err.get("rms")), _number(err.get("ref_rms"))
        if rms is not None and ref == 0.0:
            rel = 0.0  # an all-zero tensor comes back exactly
        elif rms is not None and ref is not None:
            rel = _ratio(rms, ref)
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
            sq_err += (_number(err.get("rms")) or 0.0) ** 2 * elems
            sq_ref += (_number(err.get("ref_rms")) or 0.0) ** 2 * elems
            max_rel = max(max_rel, _ratio(_number(err.get("max_abs")) or 0.0, _number(err.get("ref_max_abs"))) or 0.0)
    return {
        "input": os.fspath(path_in), "output": os.fspath(path_out), "tensors": len(recs),
        "weights": n, "input_bytes": original, "output_bytes": file_bytes,
        "ratio": _ratio(original, file_bytes),
        "bits_per_weight": _ratio(8 * file_bytes, n),
        "seconds": seconds,
        "lossy_tensors": sum(1 for r in recs if "error" in r.params),
        "max_relative_error": max_rel,
        "rms_relative_error": math.sqrt(sq_err / sq_ref) if sq_ref else 0.0,
    }


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def _say(text, file=None):
    """print() that cannot fail on a name or path holding a lone surrogate ('\ud800', or the
    undecodable bytes of a file name): such characters are written as backslash escapes."""
    file = file or sys.stdout
    encoding = getattr(file, "encoding", None) or "utf-8"
    print(text.encode(encoding, "backslashreplace").decode(encoding), file=file)


def _name(name):
    """A tensor name for a table: as it is when printable, else its repr (escapes control
    characters and lone surrogates that would garble the table or the terminal)."""
    return name if name.isprintable() else repr(name)


def _no_check(args):
    pass


def _check_compress(args):
    """The command line's own mistakes, found before any file is read (exit 2, not 1)."""
    from tensorpress import checkpoints, pipeline
    from tensorpress.errors import InvalidArgumentError

    checkpoints.kind(args.input)
    if checkpoints.output_kind(args.output) != ".tpz":
        raise InvalidArgumentError(f"{args.output}: compress writes .tpz files")
    pipeline._options(args.sparsity, args.bits, args.axis, args.block_size, args.keep_small, args.keep)


def _compress(args):
    from tensorpress import checkpoints, container, pipeline

    start = time.perf_counter()
    tensors = checkpoints.read(args.input)  # .safetensors and shards: mapped tensor by tensor when compressed
    # Records stream to the file as they are made: memory holds a few tensors, not the checkpoint
    # nor its compressed copy. The .tpz keeps the safetensors metadata and shard layout.
    records = pipeline.iter_records(
        tensors, sparsity=args.sparsity, bits=args.bits, axis=args.axis, block_size=args.block_size,
        keep_small=args.keep_small, keep=args.keep or (), threads=args.threads,
        progress=_progress(not args.json, "compress"), lossless=args.lossless)
    index = container.write_file(args.output, records, checkpoint=getattr(tensors, "info", None))
    summary = _summary(index, time.perf_counter() - start, args.input, args.output,
                       os.path.getsize(args.output))
    if args.json:
        _say(json.dumps(summary, indent=2))
    else:
        s = summary
        _say(f"{s['input']} -> {s['output']}: {s['tensors']} tensors, {s['weights']:,} weights, "
             f"{_size(s['input_bytes'])} -> {_size(s['output_bytes'])} ({_fmt(s['ratio'], '.2f')}x, "
             f"{_fmt(s['bits_per_weight'], '.3f')} bits/weight) in {s['seconds']:.2f} s")
        _say(f"  {s['lossy_tensors']} tensors quantized: max relative error {s['max_relative_error']:.3g}, "
             f"RMS relative error {s['rms_relative_error']:.3g}")
    return EXIT_OK


def _check_decompress(args):
    from tensorpress import checkpoints
    from tensorpress.errors import InvalidArgumentError

    if checkpoints.kind(args.input) != ".tpz":
        raise InvalidArgumentError(f"{args.input}: decompress reads .tpz files")
    if checkpoints.output_kind(args.output) == ".tpz":
        raise InvalidArgumentError(f"{args.output}: decompress writes .safetensors or .npz files, or a directory of shards")


def _decompress(args):
    from tensorpress import checkpoints, container, pipeline
    from tensorpress.errors import InvalidArgumentError

    start = time.perf_counter()
    with container.Reader(args.input) as reader:
        # decoded one tensor at a time as the writer asks, each in its dtype before compression
        tensors = pipeline.Decoded(reader, names=args.names, source_dtypes=True)
        out_kind = checkpoints.output_kind(args.output)
        if out_kind == "directory":
            shards = checkpoints.shards_of(reader.checkpoint, list(tensors))
            if shards is None:
                raise InvalidArgumentError(f"{args.input} was not compressed from a sharded checkpoint; "
                                           "decompress it to a .safetensors or .npz file")
            paths = checkpoints.write_sharded(args.output, tensors, shards)
        else:
            metadata = checkpoints.common_metadata(reader.checkpoint) if out_kind == ".safetensors" else None
            checkpoints.write(args.output, tensors, metadata)
            paths = [args.output]
    seconds = time.perf_counter() - start
    result = {"input": args.input, "output": args.output, "tensors": len(tensors),
              "output_bytes": sum(os.path.getsize(p) for p in paths), "seconds": seconds}
    if args.json:
        _say(json.dumps(result, indent=2))
    else:
        _say(f"{args.input} -> {args.output}: {len(tensors)} tensors, {_size(result['output_bytes'])} in {seconds:.2f} s")
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
                     "stored_bytes": stored, "bits_per_weight": _ratio(8 * stored, n),
                     "ratio": _ratio(orig, stored), "rms_relative_error": rel})
    file_bytes = os.path.getsize(args.file)
    totals = {"tensors": len(rows), "weights": total_n, "file_bytes": file_bytes,
              "bits_per_weight": _ratio(8 * file_bytes, total_n), "ratio": _ratio(total_orig, file_bytes)}
    if args.json:  # json.dumps escapes every non-ASCII character, lone surrogates included
        _say(json.dumps({"file": args.file, "tensors": rows, "total": totals}, indent=2))
        return EXIT_OK
    from tensorpress._bench.timing import format_table

    table = [[_name(r["name"]), "x".join(map(str, r["shape"])) or "scalar", _name(r["codec"]), f"{r['stored_bytes']:,}",
              _fmt(r["bits_per_weight"], ".3f"), _fmt(r["ratio"], ".2f"), _fmt(r["rms_relative_error"], ".2e")]
             for r in rows]
    _say(format_table(f"{args.file}: {len(rows)} tensors, {total_n:,} weights, {_size(file_bytes)}, "
                      f"{_fmt(totals['bits_per_weight'], '.3f')} bits/weight, {_fmt(totals['ratio'], '.2f')}x",
                      ["tensor", "shape", "codec", "bytes", "bits/weight", "ratio", "RMS rel. error"], table))
    return EXIT_OK


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, except that the exit-status table keeps its lines."""

    def _fill_text(self, text, width, indent):
        if text == EXIT_HELP:
            return textwrap.indent(text, indent)
        return super()._fill_text(text, width, indent)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tensorpress",
        description="Compiled CPU kernels for training and shrinking neural-network weights.",
        epilog=EXIT_HELP, formatter_class=_Formatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    with_exit_codes = {"epilog": EXIT_HELP, "formatter_class": _Formatter}  # in every --help
    bench = sub.add_parser(
        "bench", **with_exit_codes,
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
    bench.set_defaults(run=_bench, check=_no_check)

    comp = sub.add_parser(
        "compress", **with_exit_codes, help="prune, quantize and Huffman-code a checkpoint into a .tpz file",
        description="Deep Compression of a checkpoint: per large floating-point tensor, magnitude "
        "pruning to --sparsity, symmetric int8 quantization per output channel, Huffman coding of "
        "the values (and of the gaps between nonzeros when that is smaller). Small, non-float and "
        "--keep tensors are stored losslessly (floats with the float codec: byte planes, Huffman-coded "
        "exponents). With --lossless every tensor is, bit for bit (bfloat16 weights shrink to about "
        "2/3, float32 to 5/6) and the lossy options change nothing. bfloat16 and float16 tensors are quantized as they are "
        "(the int8 of their float32 values, without a float32 copy). A .safetensors input, one file or "
        "sharded, is read tensor by tensor through memory maps and the output written as each tensor "
        "is done, so memory holds a few tensors, not the checkpoint. The .tpz keeps the safetensors "
        "metadata and the shard layout for decompress. The output is written atomically.")
    comp.add_argument("input", help="checkpoint to read: .safetensors, .npz or .tpz, or a sharded .safetensors "
                      "checkpoint: its directory (holding one *.safetensors.index.json) or its index.json")
    comp.add_argument("-o", "--output", required=True, help="the .tpz file to write")
    comp.add_argument("--sparsity", type=float, default=0.0, help="fraction of each large tensor's weights set to zero, in [0, 1) (default 0)")
    comp.add_argument("--bits", type=int, default=8, help="quantization width, 2 to 8 (default 8)")
    comp.add_argument("--axis", type=int, default=0, help="output-channel axis that gets one scale per channel (default 0)")
    comp.add_argument("--block-size", type=int, default=None, help="one scale per block of this many elements along the last axis instead of per channel")
    comp.add_argument("--keep", nargs="+", metavar="NAME", help="tensors to store losslessly")
    comp.add_argument("--keep-small", type=int, default=1024, help="store tensors with fewer elements than this losslessly (default 1024)")
    comp.add_argument("--lossless", action="store_true", help="store every tensor bit for bit (no pruning, no quantization)")
    comp.add_argument("--threads", type=int, default=None, help="tensors compressed in parallel (default: cores, at most 8)")
    comp.add_argument("--json", action="store_true", help="print a machine-readable summary")
    comp.set_defaults(run=_compress, check=_check_compress)

    dec = sub.add_parser("decompress", **with_exit_codes, help="turn a .tpz file back into .safetensors, .npz or shards",
                         description="Decode a .tpz file (all tensors, or --names) tensor by tensor and write "
                         "them, atomically, each in the dtype it had before compression (quantized bfloat16 and "
                         "float16 tensors rounded to nearest even). A directory output gets the shards and index "
                         "of the sharded checkpoint the .tpz was made from: every file is written completely "
                         "before any is renamed into place, the index last; on an error or an interruption the "
                         "directory is left as it was (a new one is removed), other files in it are not touched.")
    dec.add_argument("input", help="the .tpz file to read")
    dec.add_argument("-o", "--output", required=True, help="where to write: a .safetensors or .npz file (every tensor "
                     "in one file), or a directory (a path without extension) for the shards and index.json")
    dec.add_argument("--names", nargs="+", metavar="NAME", help="decode only these tensors")
    dec.add_argument("--json", action="store_true", help="print a machine-readable summary")
    dec.set_defaults(run=_decompress, check=_check_decompress)

    info = sub.add_parser("info", **with_exit_codes, help="show what a .tpz file holds and what each tensor costs",
                          description="One row per tensor: shape, codec, stored bytes, bits per weight, "
                          "compression ratio and the RMS relative error recorded at compression.")
    info.add_argument("file", help="the .tpz file")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(run=_info, check=_no_check)
    return parser


class Terminated(BaseException):
    """SIGTERM arrived while a command ran. Raised in the main thread, it unwinds like Ctrl-C's
    KeyboardInterrupt, so the same cleanup runs (an unfinished output file is removed)."""


def _on_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
    raise Terminated()


@contextlib.contextmanager
def _sigterm_raises():
    """SIGTERM raises Terminated inside the block; the previous handler is restored after it."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; SIGTERM keeps its action there
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _error(args, message):
    _say(f"tensorpress {args.command}: error: {message}", file=sys.stderr)


def _os_message(exc):
    """The OS's words and the file they are about, without Python's "[Errno 2]" wrapping."""
    if exc.filename is not None and exc.strerror:
        return f"{os.fsdecode(exc.filename)}: {exc.strerror}"
    return str(exc)


def main(argv=None):
    """Run the command line `argv` (default sys.argv[1:]) and return its exit status (see
    EXIT_HELP); argparse's own usage errors raise SystemExit(2)."""
    from tensorpress.errors import CorruptDataError, TensorpressError

    args = build_parser().parse_args(argv)
    source = getattr(args, "input", None) or getattr(args, "file", None)
    where = f"{source}: " if source else ""
    with _sigterm_raises():
        try:
            try:
                args.check(args)
            except TensorpressError as exc:
                _error(args, str(exc))
                return EXIT_USAGE
            return args.run(args)
        except KeyboardInterrupt:
            _error(args, "interrupted")
            return EXIT_INTERRUPTED
        except Terminated:
            _error(args, "terminated")
            return EXIT_TERMINATED
        except CorruptDataError as exc:
            _error(args, f"{where}damaged input: {exc}")
            return EXIT_DATA
        except TensorpressError as exc:  # what the input holds cannot be processed as asked
            _error(args, f"{where}{exc}")
            return EXIT_DATA
        except OSError as exc:
            _error(args, _os_message(exc))
            return EXIT_OS


if __name__ == "__main__":
    sys.exit(main())
