"""The encoders return bytes that their kernels wrote in place (_native/new_bytes.py): the
objects must be ordinary, exactly owned bytes, and nothing may leak on success or failure."""

import ctypes
import gc
import sys
import tracemalloc

import ml_dtypes
import numpy as np
import pytest

import tensorpress as tp

native = pytest.importorskip("tensorpress._native.new_bytes")


def _fill(pattern, used):
    def write(address):
        ctypes.memmove(address, pattern, used)
        return used
    return write


@pytest.mark.parametrize("capacity, used", [(1, 0), (1, 1), (7, 3), (4096, 4096), (5 << 20, 3 << 20),
                                            (5 << 20, 17)])
def test_holds_what_was_written_and_is_owned_once(capacity, used):
    pattern = bytes(np.random.default_rng(capacity + used).integers(0, 256, used, dtype=np.uint8))
    b = native.written_in_place(capacity, _fill(pattern, used))
    assert type(b) is bytes and b == pattern and len(b) == used
    if used:  # b"" is CPython's shared empty object
        assert sys.getrefcount(b) == 2  # b and getrefcount's argument
    assert hash(b) == hash(pattern)


def test_zero_capacity_is_refused():
    with pytest.raises(ValueError):
        native.written_in_place(0, lambda address: 0)


def _traced_growth(call, rounds=40):
    """Bytes still allocated after `rounds` calls (after one warm-up call)."""
    call()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(rounds):
            call()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_no_leak_when_the_writer_raises():
    def failing(address):
        raise RuntimeError("kernel failed")

    def call():
        with pytest.raises(RuntimeError):
            native.written_in_place(1 << 20, failing)
    assert _traced_growth(call) < 1 << 16


def test_no_leak_on_success():
    pattern = bytes(range(256)) * 64
    assert _traced_growth(lambda: native.written_in_place(1 << 20, _fill(pattern, len(pattern)))) < 1 << 16


@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16])
def test_encoders_return_owned_bytes_without_leaking(dtype):
    x = np.random.default_rng(0).standard_normal(300_000).astype(dtype)
    blob = tp.float_encode(x)
    assert type(blob) is bytes and sys.getrefcount(blob) == 2
    assert tp.float_decode(blob).tobytes() == x.tobytes()
    assert _traced_growth(lambda: tp.float_encode(x), rounds=10) < 1 << 16
    symbols = np.random.default_rng(1).integers(-3, 3, 500_000).astype(np.int8)
    hblob = tp.huffman_encode(symbols)
    assert type(hblob) is bytes and sys.getrefcount(hblob) == 2
    np.testing.assert_array_equal(tp.huffman_decode(hblob), symbols)
    assert _traced_growth(lambda: tp.huffman_encode(symbols), rounds=10) < 1 << 16
