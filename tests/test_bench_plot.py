"""`tensorpress bench` reports and `--plot` charts, on sizes shrunk so that each test takes a
second or two (the measured figures are meaningless here; the structure is what is checked)."""

import os
import sys

import numpy as np
import pytest

from tensorpress import _backend, cli
from tensorpress._bench import adam, adam_mixed, huffman, pipeline, plot, quant, timing, topk
from tensorpress._bench.report import Report, Series, memory_bound_only

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HAS_C = "c" in _backend.available_backends()


def has_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


needs_matplotlib = pytest.mark.skipif(not has_matplotlib(), reason="matplotlib is not installed")


@pytest.fixture
def tiny(monkeypatch):
    """Every family's --quick sizes shrunk to a few thousand elements, one short timing round
    per figure, and a small checkpoint."""
    best_time, best_times = timing.best_time, timing.best_times
    for module in (timing, adam, adam_mixed, quant, topk, huffman):
        if hasattr(module, "best_time"):
            monkeypatch.setattr(module, "best_time", lambda fn, **kw: best_time(fn, repeat=1, min_time=0.001))
        if hasattr(module, "best_times"):
            monkeypatch.setattr(module, "best_times", lambda fns, contexts=None, **kw: best_times(
                fns, contexts=contexts, repeat=1, min_time=0.001, settle=0))
    monkeypatch.setattr(adam, "QUICK_SIZES", [1, 4096])
    monkeypatch.setattr(adam_mixed, "QUICK_SIZES", [4096])
    monkeypatch.setattr(quant, "QUICK_SIDE", 96)
    monkeypatch.setattr(quant, "QUICK_SIDES", (32, 64))
    monkeypatch.setattr(topk, "QUICK_N", 1 << 14)
    monkeypatch.setattr(topk, "QUICK_SWEEP", [1 << 12])
    monkeypatch.setattr(huffman, "QUICK_N", 1 << 17)
    monkeypatch.setattr(huffman, "QUICK_SWEEP", [1 << 12])
    rng = np.random.default_rng(0)
    tensors = {"w1": (0.05 * rng.standard_normal((128, 64))).astype(np.float32),
               "w2": (0.05 * rng.standard_normal((64, 96))).astype(np.float32),
               "b1": np.zeros(128, np.float32)}
    monkeypatch.setattr(pipeline, "load_checkpoint", lambda: ("a small test checkpoint", tensors))


def check_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert 1000 < len(data) < 100_000


def test_text_formats_raw_cells():
    report = Report("x", "title", ["case", "rate", "ratio"], ["{}", "{:.3g}", "{:.2f}x"],
                    rows=[["a", 1234567.0, 2.0], ["bb", None, None]], notes=["a note"])
    assert report.text().splitlines() == [
        "title",
        "case      rate  ratio",
        "----  --------  -----",
        "a     1.23e+06  2.00x",
        "bb           -      -",
        "a note",
    ]


@pytest.mark.parametrize("family", [adam, quant, topk, huffman])
def test_throughput_series(family, tiny):
    report = family.run(quick=True, plot=True)
    assert report.family == family.__name__.rsplit(".", 1)[1]
    assert report.rows and all(len(row) == len(report.headers) for row in report.rows)
    labels = {s.label for s in report.series}
    baseline = "zlib Z_HUFFMAN_ONLY" if family is huffman else next(l for l in labels if "NumPy" in l)
    assert baseline in labels
    if HAS_C:
        assert any(l.startswith(("tensorpress C", "C kernel")) for l in labels)
    for s in report.series:
        assert len(s.x) == len(s.y) >= 2 and s.x == sorted(s.x)  # at least two sizes, in order
        assert all(y is None or y > 0 for y in s.y)
    panels = {quant: {"quantize per channel (axis 0)", "dequantize (axis 0)"}, huffman: {"encode", "decode"},
              topk: {"topk_mask, k = 10%"}, adam: {""}}[family]
    assert {s.panel for s in report.series} == panels


def test_bound_line_starts_where_data_leaves_the_cache():
    assert memory_bound_only([4096, 1 << 20, 1 << 24], [1e10, 2e9, 1e9]) == [None, 2e9, 1e9]


def test_no_series_without_plot(tiny):
    report = topk.run(quick=True)
    assert report.rows and not report.series


def test_pipeline_series(tiny):
    report = pipeline.run(quick=False, plot=True)
    assert [row[0] for row in report.rows] == list(pipeline.SPARSITIES)
    by_label = {s.label: s for s in report.series}
    bits, bound, error = by_label["bits/weight"], by_label["entropy bound"], by_label["RMS relative error"]
    assert bits.x == list(pipeline.PLOT_SPARSITIES) and error.axis == 2 and bound.dashed
    assert bits.y == sorted(bits.y, reverse=True)  # fewer bits as more weights are pruned
    assert error.y == sorted(error.y)  # and more error
    assert all(b >= e for b, e in zip(bits.y, bound.y))  # never below the entropy bound
    # The table's row at sparsity 0 is the chart's first point.
    assert report.rows[0][3] == pytest.approx(bits.y[0])


@needs_matplotlib
def test_write_chart(tiny, tmp_path):
    report = Report("demo", "t", ["case"], ["{}"], series=[
        Series("fast", [1, 10, 100], [1e6, 1e7, None], panel="a"),
        Series("bound", [1, 10, 100], [1e8, 1e8, 1e8], panel="a", dashed=True),
        Series("error", [1, 10, 100], [1e-3, 1e-2, 1e-1], panel="b", axis=2),
    ])
    path = plot.write_chart(report, str(tmp_path))
    check_png(tmp_path / "demo.png")
    assert path == str(tmp_path / "demo.png")
    assert plot.write_chart(Report("empty", "t", [], []), str(tmp_path)) is None


@needs_matplotlib
def test_bench_plot_command(tiny, tmp_path, capsys):
    charts = tmp_path / "charts"  # created by the command
    assert cli.main(["bench", "--quick", "--only", "topk", "pipeline", "--plot", str(charts)]) == 0
    out = capsys.readouterr().out
    assert "Top-k magnitude masks" in out and "Deep Compression" in out
    assert sorted(p.name for p in charts.iterdir()) == ["pipeline.png", "topk.png"]
    for name in ("topk.png", "pipeline.png"):
        check_png(charts / name)


def test_bench_without_matplotlib(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    assert cli.main(["bench", "--quick", "--only", "topk", "--plot", str(tmp_path / "charts")]) == 2
    err = capsys.readouterr().err
    assert 'pip install "tensorpress[plot]"' in err
    assert not (tmp_path / "charts").exists()  # refused before measuring anything
    assert cli.main(["bench", "--quick", "--only", "topk"]) == 0  # the tables need no matplotlib
    assert "Top-k magnitude masks" in capsys.readouterr().out


def test_best_times_runs_rounds_side_by_side():
    import contextlib
    import time

    order = []

    @contextlib.contextmanager
    def routed():
        order.append("enter")
        yield

    def fast():
        if not order or order[-1] != "fast":
            order.append("fast")

    def slow():
        time.sleep(0.002)
        if order[-1] != "slow":
            order.append("slow")

    t = timing.best_times({"fast": fast, "missing": None, "slow": slow}, contexts={"fast": routed},
                          repeat=3, min_time=0.001, settle=0)
    assert t["missing"] is None
    assert t["slow"] >= 0.002 > t["fast"] > 0
    # calibration, then three rounds, each with the context entered around the fast one's calls
    assert order == ["enter", "fast", "slow"] + ["enter", "fast", "slow"] * 3


def test_adam_share_of_bound():
    """The probe's time over a kernel's, in percent; missing when either was not timed."""
    times = {"bound": 2.0, "c": 2.5, "torch": 4.0, "numba": None}
    assert adam.share_of_bound(times, "c") == pytest.approx(80.0)
    assert adam.share_of_bound(times, "torch") == pytest.approx(50.0)
    assert adam.share_of_bound(times, "numba") is None
    assert adam.share_of_bound({"bound": None, "c": 1.0}, "c") is None


def test_adam_mixed_naive_steps_match_tensorpress():
    """The adam_mixed bench's naive NumPy rows compute tp.adam_step's update on every backend."""
    from tensorpress import optim

    for backend in _backend.available_backends():
        with timing.routed_to(optim, "adam", backend):
            adam_mixed.check_naive_steps()


def fake_deepspeed(monkeypatch, build_error=None, step_error=None):
    """Modules standing in for deepspeed whose cpu_adam op fails to build with build_error, or
    whose optimizer fails with step_error."""
    import types

    class CPUAdamBuilder:
        def load(self):
            if build_error:
                raise build_error

    def cpu_adam(params, **kwargs):
        raise step_error

    modules = {"deepspeed": types.ModuleType("deepspeed"), "deepspeed.ops": types.ModuleType("deepspeed.ops"),
               "deepspeed.ops.adam": types.ModuleType("deepspeed.ops.adam"),
               "deepspeed.ops.op_builder": types.ModuleType("deepspeed.ops.op_builder")}
    modules["deepspeed"].__version__ = "0.0-test"
    modules["deepspeed.ops.adam"].DeepSpeedCPUAdam = cpu_adam
    modules["deepspeed.ops.op_builder"].CPUAdamBuilder = CPUAdamBuilder
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)


@pytest.mark.skipif(timing.torch_or_none() is None, reason="torch is not installed")
@pytest.mark.parametrize("deepspeed", ["missing", "build fails", "step fails"])
def test_adam_mixed_runs_without_deepspeed(tiny, monkeypatch, deepspeed):
    """DeepSpeed is an optional peer: unimportable, with its op failing to build or its steps
    failing, the bench still runs, its cells empty and a note saying why; DS_ACCELERATOR is set
    only if unset."""
    if deepspeed == "missing":
        monkeypatch.setitem(sys.modules, "deepspeed", None)  # import deepspeed raises ImportError
    elif deepspeed == "build fails":
        fake_deepspeed(monkeypatch, build_error=RuntimeError("ninja: build stopped: subcommand failed.\nmore"))
    else:
        fake_deepspeed(monkeypatch, step_error=RuntimeError("AVX512 required for BFloat16\nmore"))
    monkeypatch.setenv("DS_ACCELERATOR", "unset")
    monkeypatch.delenv("DS_ACCELERATOR")
    report = adam_mixed.run(quick=True)
    ds = report.headers.index("DeepSpeed elem/s")
    assert [row[0] for row in report.rows] == ["offload", "bf16"]
    assert all(row[ds] is None and row[ds + 3] is None for row in report.rows)
    assert all((row[2] or row[3]) and row[4] and row[5] for row in report.rows)  # ours, NumPy, torch ran
    expected = {"missing": ["not importable"],
                "build fails": ["failed to build or load (RuntimeError: ninja: build stopped"],
                "step fails": ["DeepSpeed 0.0-test CPUAdam", "offload step failed, its cells empty (RuntimeError: AVX",
                               "bf16 step failed"]}[deepspeed]
    assert report.notes[0].startswith("NumPy: its temporaries reused")
    assert len(report.notes) == 1 + len(expected)
    assert all(e in note and "more" not in note for e, note in zip(expected, report.notes[1:]))
    assert os.environ["DS_ACCELERATOR"] == "cpu"
    monkeypatch.setenv("DS_ACCELERATOR", "xpu")
    adam_mixed.deepspeed_cpu_adam()
    assert os.environ["DS_ACCELERATOR"] == "xpu"


def test_topk_global_note_compares_with_the_float32_mask(tiny):
    """The global row's note is its time over the first row's (topk_mask, float32, k = 10%),
    not over any other row's (the float16 row also is a 10% mask); the chart's table point is
    that first row too."""
    report = topk.run(quick=True, plot=True)
    first = report.rows[0]
    assert first[0].startswith("topk_mask") and "float16" not in first[0] and "k=10%" in first[0]
    glob = next(row for row in report.rows if row[0].startswith("global"))
    # same element count, so the time ratio is the inverse ratio of the rates
    assert glob[-1] == f"{first[1] / glob[1]:.2f}x one array"
    c_series = next(s for s in report.series if s.label == "tensorpress C")
    assert c_series.y[-1] == pytest.approx(first[1])


def test_lossless_report(tiny, monkeypatch):
    """The lossless family's table: the bound and tensorpress's rows for every dtype, their
    ratio at the bound or better than the naive sum of the planes' sizes."""
    from tensorpress._bench import lossless

    monkeypatch.setattr(lossless, "QUICK_N", 1 << 14)
    report = lossless.run(quick=True)
    rows = {(r[0], r[1], r[2]) for r in report.rows}
    for dtype in ("float32", "bfloat16", "float16"):
        assert ("order-0 bound of the byte planes", dtype, None) in rows
        assert ("tensorpress C", dtype, 1) in rows or "c" not in tp_backends()
    assert all(r[3] > 1.0 for r in report.rows if r[0].startswith("tensorpress"))
    assert "Lossless compression" in report.text()


def tp_backends():
    from tensorpress import _backend

    return _backend.available_backends()
