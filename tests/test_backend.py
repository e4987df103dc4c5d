"""Backend selection, thread control and CPU-variant selection."""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import tensorpress as tp
from tensorpress import _backend, _consts
from conftest import requires_c

BLOCK_C = "import sys; sys.modules['tensorpress._tensorpress_c'] = None\n"


def run_python(code, **env):
    full_env = {k: v for k, v in os.environ.items() if k != "TENSORPRESS_BACKEND"}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=full_env, timeout=300)


def test_backend_is_the_requested_one():
    requested = os.environ.get("TENSORPRESS_BACKEND", "auto")
    assert tp.backend in _backend.available_backends()
    if requested in ("c", "numba"):
        assert tp.backend == requested
    elif "c" in _backend.available_backends():
        assert tp.backend == "c"


def test_unknown_backend_name_is_an_error():
    result = run_python("import tensorpress", TENSORPRESS_BACKEND="fortran")
    assert result.returncode != 0
    assert "TENSORPRESS_BACKEND='fortran' is not one of auto, c, numba" in result.stderr


def test_auto_falls_back_to_numba_with_one_warning_when_c_is_missing():
    result = run_python(BLOCK_C + textwrap.dedent("""
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import numpy as np
            import tensorpress as tp
        print(tp.backend, len([w for w in caught if "Numba backend" in str(w.message)]))
        p, g, m, v = np.ones(3, np.float32), np.ones(3, np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32)
        tp.adam_step(p, g, m, v, step=1)
        print(p.tolist())
    """))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[0] == "numba 1"
    assert lines[1] == "[0.9990000128746033, 0.9990000128746033, 0.9990000128746033]"


def test_forcing_an_unavailable_backend_says_why():
    result = run_python(BLOCK_C + "import tensorpress", TENSORPRESS_BACKEND="c")
    assert result.returncode != 0
    assert "BackendError" in result.stderr and "does not import" in result.stderr


def test_thread_count_control():
    before = tp.get_num_threads()
    try:
        tp.set_num_threads(1)
        assert tp.get_num_threads() == 1
        if "c" in _backend.available_backends():
            from tensorpress import _native

            assert _native.get_num_threads() == 1 or not _native.openmp_enabled()
    finally:
        tp.set_num_threads(before)
    for bad, exc in [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError)]:
        with pytest.raises(exc):
            tp.set_num_threads(bad)


def test_omp_num_threads_sets_the_default():
    result = run_python("import tensorpress as tp; print(tp.get_num_threads())", OMP_NUM_THREADS="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


@requires_c
def test_cpu_variants():
    from tensorpress import _native

    names = _native.available_isas()
    assert names[:2] == ["scalar", "baseline"]
    assert _native.current_isa() == names[-1]
    assert _native.isa_code(None) == _native.ISA_CODES[names[-1]]
    with pytest.raises(tp.InvalidArgumentError):
        _native.isa_code("sse9")
    x = np.ones(64, np.float32)
    missing = [n for n in ("avx2", "avx512") if n not in names]
    for name in missing:  # a variant this CPU lacks is refused per call, not run
        with pytest.raises(tp.BackendError):
            _backend.kernels_of("c", "topk").topk_select([x], 3, None, isa=name)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_kernels_work_in_a_forked_child_after_threads_were_used():
    # GCC's OpenMP runtime hangs when a forked child enters a parallel region its parent used;
    # tensorpress keeps forked children on one thread instead.
    result = run_python("""
        import os, numpy as np, tensorpress as tp
        n = 1 << 20
        arrays = [np.ones(n, np.float32) for _ in range(2)] + [np.zeros(n, np.float32) for _ in range(2)]
        x = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
        def every_kernel():
            tp.adam_step(*arrays, step=1, grad_scale=2.0)
            q, s = tp.quantize_int8(x, axis=0)
            tp.dequantize_int8(q, s, axis=0)
            tp.topk_mask(x, 0.1)
            tp.topk_mask(x, 0.1, axis=1)
            assert np.array_equal(tp.huffman_decode(tp.huffman_encode(q)), q)
        every_kernel()
        before = tp.get_num_threads()
        pid = os.fork()
        if pid == 0:
            every_kernel()
            ok = tp.get_num_threads() == 1
            try:
                tp.set_num_threads(2)
                ok = False
            except tp.BackendError:
                pass
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), tp.get_num_threads() == before)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "True"]


def test_set_num_threads_range():
    # The C side's count is an int: 2**31 raised OverflowError from cffi; now a clear error.
    before = tp.get_num_threads()
    try:
        for bad in (2**31, 2**63, 2**64):
            with pytest.raises(tp.InvalidArgumentError, match="<= 2147483647"):
                tp.set_num_threads(bad)
            assert tp.get_num_threads() == before
        # The largest accepted n is kept as asked; the backends get what they can use.
        tp.set_num_threads(2**31 - 1)
        assert tp.get_num_threads() == 2**31 - 1
        if "c" in _backend.available_backends():
            from tensorpress import _native

            assert _native.get_num_threads() <= 4 * os.cpu_count() or not _native.openmp_enabled()
        x = np.arange(4096, dtype=np.float32).reshape(64, 64)
        q, scale = tp.quantize_int8(x, axis=1)  # per-thread workspaces stay small
        assert q[-1, -1] == 127
    finally:
        tp.set_num_threads(before)


def test_omp_num_threads_beyond_an_int_is_clamped():
    result = run_python("import tensorpress as tp; print(tp.get_num_threads())",
                        OMP_NUM_THREADS=str(2**40))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(2**31 - 1)


# ---- both backends give the same answer at the edges of the argument ranges ----
# The public layer is run on each backend in turn by pointing its family modules at that
# backend's kernels, so validation and layout are the same code on both.

BACKENDS = _backend.available_backends()
_FAMILY_MODULES = {"adam": ("optim", "_kernels"), "quant": ("quant", "_k"), "topk": ("prune", "_kernels")}


@pytest.fixture
def use_backend(monkeypatch):
    def use(backend):
        for family, (module, name) in _FAMILY_MODULES.items():
            monkeypatch.setattr(f"tensorpress.{module}.{name}", _backend.kernels_of(backend, family))
    return use


def on_each_backend(use_backend, call):
    """{backend: call()} for every available backend; an exception is returned by its type.
    Warnings are errors: C never warns, so the twin must not either."""
    results = {}
    for backend in BACKENDS:
        use_backend(backend)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                results[backend] = call()
            except Exception as exc:  # noqa: BLE001 - the type is compared
                results[backend] = type(exc)
    return results


def as_bytes(result):
    """Results of a call (arrays, bools, tuples of them) as comparable bytes."""
    if isinstance(result, (tuple, list)):
        return tuple(as_bytes(r) for r in result)
    if isinstance(result, np.ndarray):
        return result.dtype.str, result.shape, result.tobytes()
    return result


ADAM_EDGES = [
    # grad_scale rounds to 0 in float32: every g / 0 is Inf or NaN, so the step is skipped
    # (Numba raised ZeroDivisionError); to a float32 subnormal; to Inf in float32 (g = 0).
    dict(grad_scale=1e-300), dict(grad_scale=1e-45), dict(grad_scale=1e300),
    dict(grad_scale=-1e-300, amsgrad=True, maximize=True),
    dict(eps=0.0),  # 0 / 0 where grad and state are 0: NaN params, as in C (Numba raised)
    dict(step=2**63 - 1), dict(step=2**62, betas=(0.0, 0.0)),
    dict(lr=1e300, weight_decay=1e300, decoupled_weight_decay=True),  # constants overflow float32
    dict(lr=1e300, weight_decay=1e-300),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", ADAM_EDGES, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_adam_edges_agree(use_backend, dtype, options):
    options = dict(options)
    step = options.pop("step", 3)
    amsgrad = options.get("amsgrad", False)
    base = [np.array([0.0, 1.5, -2.0, 3e-39, 1e30, -0.0, 0.25, 7.0], dtype) for _ in range(5)]
    base[1] = np.array([0.0, -1.0, 2.5, 1e-30, 0.0, 1e-3, -0.0, 4.0], dtype)  # grads
    base[2][:] = 0  # zero first moment where the grad is 0: eps=0 gives 0 / 0
    base[3][:] = np.abs(base[3])

    def step_once():
        p, g, m, v, vmax = (a.copy() for a in base)
        found_inf = tp.adam_step(p, g, m, v, step=step, max_exp_avg_sqs=vmax if amsgrad else None,
                                 **options)
        return found_inf, p, m, v, vmax

    results = on_each_backend(use_backend, step_once)
    for backend, result in results.items():
        assert not isinstance(result, type), f"{backend} raised {result.__name__}"
    if len(results) == 2:
        assert as_bytes(results["c"]) == as_bytes(results["numba"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_grad_scale_that_rounds_to_zero_skips_the_step(use_backend, dtype):
    # In float32 (the arithmetic of a float32 step, as C does it) 1e-300 is 0: the step is a
    # no-op returning found_inf. In float64 it is a tiny scale: a finite step.
    p, g, m, v = (np.full(4, x, dtype) for x in (1.0, 1.0, 0.0, 0.0))
    results = on_each_backend(use_backend, lambda: (
        tp.adam_step(*(a.copy() for a in (p, g, m, v)), step=1, grad_scale=1e-300)))
    assert results == {backend: dtype == np.float32 for backend in BACKENDS}


HUGE_BLOCKS = [2**40, 2**62, 2**63 - 1]


def _quant_cases():
    for backend in BACKENDS:
        for block in HUGE_BLOCKS:
            yield pytest.param(backend, block, id=f"{backend}-{block}")


@pytest.mark.parametrize("backend,block", list(_quant_cases()))
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_quantize_huge_block_size_is_one_block_per_row(use_backend, backend, block, dtype):
    # One block covers each row, so the result is that of block_size=row length (Numba once
    # returned np.empty's garbage for block_size=2**63).
    use_backend(backend)
    x = np.random.default_rng(7).standard_normal((3, 5)).astype(dtype)
    given = np.array([[0.01], [0.02], [0.03]], np.float32)
    calls = [
        lambda b: tp.quantize_int8(x, block_size=b),
        lambda b: tp.quantize_int8(x, block_size=b, symmetric=False),
        lambda b: tp.quantize_int8(x, block_size=b, scale=given),
        lambda b: tp.quantize_int8(x, block_size=b, scale=given, zero_point=np.full((3, 1), 5)),
    ]
    for call in calls:
        want = call(5)
        got = call(block)
        assert as_bytes(got) == as_bytes(want)
        back = tp.dequantize_int8(got[0], *got[1:], block_size=block)
        assert as_bytes(back) == as_bytes(tp.dequantize_int8(want[0], *want[1:], block_size=5))


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba not installed")
def test_numba_quantize_refuses_a_block_beyond_int64():
    # Numba would type it uint64 and wrap the block bounds; the public layer refuses it first,
    # and the twin does too when called directly (as C's int64_t cannot take it).
    from tensorpress._numba import quant

    x = np.ones(6, np.float32)
    for block in (2**63, 2**64 - 1):
        with pytest.raises(tp.InvalidArgumentError):
            quant.quantize(x, (2, 1, 3, block), _consts.QUANT_SYMMETRIC, np.empty(2, np.float32), None,
                           np.empty(6, np.int8))


@pytest.mark.parametrize("k", [0, 1, 14, 15, 1.0, 0.5, 1e-300, 16, 2**63 - 1, 2**63, -1])
def test_topk_edges_agree(use_backend, k):
    x = np.random.default_rng(3).standard_normal((3, 5)).astype(np.float32)
    x[1, 2] = x[0, 1]  # a tie

    def masks():
        return (tp.topk_mask(x, k), tp.topk_mask(x, k if k != 14 and k != 15 else 4, axis=1),
                tuple(tp.global_topk_masks([x, x[0]], k)))

    results = on_each_backend(use_backend, masks)
    if len(results) == 2:
        assert as_bytes(results["c"]) == as_bytes(results["numba"])
    if isinstance(k, int) and 0 <= k <= 15:
        for result in results.values():
            assert result[0].sum() == k
