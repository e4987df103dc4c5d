"""The `tensorpress` command line."""

import argparse
import sys
import time


def _bench(args):
    import platform

    import tensorpress as tp
    from tensorpress import _backend
    from tensorpress._bench import FAMILIES
    import importlib

    families = args.only or FAMILIES
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        print(f"tensorpress bench: unknown kernel family {', '.join(unknown)}; choose from {', '.join(FAMILIES)}", file=sys.stderr)
        return 2
    isa = ""
    if "c" in _backend.available_backends():
        from tensorpress import _native

        isa = f", C variant {_native.current_isa()}, OpenMP {'on' if _native.openmp_enabled() else 'off'}"
    print(f"tensorpress {tp.__version__} bench{' --quick' if args.quick else ''}: backend {tp.backend}{isa}, "
          f"{tp.get_num_threads()} threads, {platform.machine()}, numpy {__import__('numpy').__version__}")
    for family in families:
        module = importlib.import_module(f"tensorpress._bench.{family}")
        # torch's OpenMP threads spin for a while after its last op; let them settle so they do
        # not slow the first timings of the next family.
        time.sleep(0.5)
        print()
        print(module.run(quick=args.quick), flush=True)
    return 0


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
    bench.set_defaults(run=_bench)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
