"""pytest-benchmark suite of int8 quantize / dequantize (run: pytest bench/bench_quant.py).

16M float32 (4096x4096) as in the issue, and the same values as float16 and bfloat16 (the dtypes
of many inference checkpoints; dequantize also into bfloat16): tensorpress C and Numba, the naive
NumPy chain, and torch's observer + quantize_per_channel when torch is installed.
"""

import warnings

import ml_dtypes
import numpy as np
import pytest

from tensorpress import _backend
from tensorpress._bench import quant as bq

N = 4096
BACKENDS = [b for b in ("c", "numba") if b in _backend.available_backends()]


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).standard_normal((N, N), dtype=np.float32)


@pytest.fixture(scope="module")
def x16(x):
    return x.astype(np.float16)


@pytest.fixture(scope="module")
def xb16(x):
    return x.astype(ml_dtypes.bfloat16)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_quantize_tensorpress(benchmark, x, x16, xb16, backend, axis, dtype):
    from tensorpress import quant

    data = {"float32": x, "float16": x16, "bfloat16": xb16}[dtype]
    fn = bq._with_backend(backend, lambda: quant.quantize_int8(data, axis))
    q, s = benchmark(fn)
    assert q.shape == x.shape


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_quantize_blocks_tensorpress(benchmark, x, x16, xb16, backend, dtype):
    from tensorpress import quant

    data = {"float32": x, "float16": x16, "bfloat16": xb16}[dtype]
    benchmark(bq._with_backend(backend, lambda: quant.quantize_int8(data, block_size=32)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_dequantize_tensorpress(benchmark, x, backend, dtype):
    from tensorpress import quant

    q, s = quant.quantize_int8(x, 0)
    out = np.empty(x.shape, np.float32 if dtype == "float32" else ml_dtypes.bfloat16)
    benchmark(bq._with_backend(backend, lambda: quant.dequantize_int8(q, s, axis=0, out=out)))


@pytest.mark.parametrize("axis", [0, 1])
def test_quantize_naive_numpy(benchmark, x, axis):
    benchmark(bq._naive_quantize, x, 1 - axis)


def test_dequantize_naive_numpy(benchmark, x):
    q, s = bq._naive_quantize(x, 1)
    benchmark(bq._naive_dequantize, q, s)


@pytest.mark.parametrize("axis", [0, 1])
def test_quantize_torch(benchmark, x, axis):
    torch = pytest.importorskip("torch")
    xt = torch.from_numpy(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        benchmark(bq._torch_quantize, torch, xt, axis)


def test_dequantize_torch(benchmark, x):
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tq = bq._torch_quantize(torch, torch.from_numpy(x), 0)
        benchmark(tq.dequantize)
