"""pytest-benchmark suite of the Huffman family: tensorpress (C, Numba) beside zlib's
Huffman-only mode on int8 Gaussian weights. `tensorpress bench` prints the summary table
(src/tensorpress/_bench/huffman.py); this suite gives pytest-benchmark's statistics.

    pytest bench/bench_huffman.py --benchmark-only
"""

import zlib

import numpy as np
import pytest

from tensorpress import _backend
from tensorpress._bench.huffman import _zlib_encode, gaussian_int8

N = 4 << 20
X = gaussian_int8(N)
RAW = X.tobytes()
BACKENDS = _backend.available_backends()


@pytest.mark.parametrize("backend", BACKENDS)
def test_encode(benchmark, backend):
    kernels = _backend.kernels_of(backend, "huffman")
    flat = X.view(np.uint8)
    blob = benchmark(kernels.encode, flat, 1, X.shape)
    assert 8 * len(blob) < 7.2 * N


@pytest.mark.parametrize("backend", BACKENDS)
def test_decode(benchmark, backend):
    kernels = _backend.kernels_of(backend, "huffman")
    blob = np.frombuffer(kernels.encode(X.view(np.uint8), 1, X.shape), np.uint8)
    out = np.empty(N, np.uint8)
    benchmark(kernels.decode, blob, out)
    assert np.array_equal(out, X.view(np.uint8))


if "c" in BACKENDS:
    from tensorpress import _native

    ISAS = _native.available_isas()  # the C variants this machine runs
else:
    ISAS = []


@pytest.mark.parametrize("isa", ISAS)
def test_encode_c_variant(benchmark, isa):
    """Each C variant ("scalar" is the plain reference, csrc/huffman/ref.c: slow on purpose)."""
    kernels = _backend.kernels_of("c", "huffman")
    x = X[: N // 16].view(np.uint8) if isa == "scalar" else X.view(np.uint8)
    blob = benchmark(kernels.encode, x, 1, x.shape, isa=isa)
    assert blob == kernels.encode(x, 1, x.shape)


@pytest.mark.parametrize("isa", ISAS)
def test_decode_c_variant(benchmark, isa):
    kernels = _backend.kernels_of("c", "huffman")
    x = X[: N // 16].view(np.uint8) if isa == "scalar" else X.view(np.uint8)
    blob = np.frombuffer(kernels.encode(x, 1, x.shape), np.uint8)
    out = np.empty(x.size, np.uint8)
    benchmark(kernels.decode, blob, out, isa=isa)
    assert np.array_equal(out, x)


def test_zlib_huffman_only_encode(benchmark):
    benchmark(_zlib_encode, RAW)


def test_zlib_huffman_only_decode(benchmark):
    blob = _zlib_encode(RAW)
    assert benchmark(zlib.decompress, blob, -15) == RAW
