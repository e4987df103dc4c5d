"""The bandwidth probe the benchmarks take their bound from (csrc/stream.c), compiled per ISA:
every form it has must move the bytes it claims (out_k = sum of the inputs + k)."""

import numpy as np
import pytest

native = pytest.importorskip("tensorpress._native")
ffi, lib = native.ffi, native.lib


def _pointers(arrays):
    return ffi.new("float *[]", [ffi.cast("float *", ffi.from_buffer(a)) for a in arrays] or [ffi.NULL])


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 1000, 1 << 16])
@pytest.mark.parametrize("n_in, n_out", [(i, o) for i in range(1, 5) for o in range(0, 4) if o or i == 1])
def test_probe_writes_the_sum_plus_k(n_in, n_out, n):
    rng = np.random.default_rng(n * 16 + n_in * 4 + n_out)
    inputs = [rng.integers(-50, 50, n).astype(np.float32) for _ in range(n_in)]  # exact sums
    outputs = [np.full(n, np.nan, np.float32) for _ in range(n_out)]
    assert lib.tp_stream_probe(_pointers(inputs), n_in, _pointers(outputs), n_out, n) == lib.TP_OK
    total = np.sum(inputs, axis=0, dtype=np.float32) if n else np.zeros(0, np.float32)
    for k, out in enumerate(outputs):
        np.testing.assert_array_equal(out, total + k)


@pytest.mark.parametrize("n_in, n_out", [(0, 1), (5, 1), (2, 0), (1, 4), (1, -1)])
def test_probe_refuses_other_shapes(n_in, n_out):
    a = np.zeros(4, np.float32)
    assert lib.tp_stream_probe(_pointers([a] * 4), n_in, _pointers([a] * 4), n_out, 4) == lib.TP_ERR_ARGUMENT
