"""Backend selection, thread control and CPU-variant selection."""

import os
import subprocess
import sys
import textwrap

import pytest

import tensorpress as tp
from tensorpress import _backend
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
    with _native.forced_isa("scalar"):
        assert _native.current_isa() == "scalar"
    assert _native.current_isa() == names[-1]
    missing = [n for n in ("avx2", "avx512") if n not in names]
    for name in missing:
        with pytest.raises(tp.BackendError):
            with _native.forced_isa(name):
                pass


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
