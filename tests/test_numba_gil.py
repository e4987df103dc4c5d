"""Kernels release the GIL (DESIGN.md: threads), on both backends: a pure-Python thread keeps
running while a kernel works in another thread. Numba twins held it until nogil=True: the other
thread then ran at 2-3% of its speed."""

import importlib
import sys
import threading
import time

import numpy as np
import pytest

import tensorpress as tp
from tensorpress import _backend

BACKENDS = _backend.available_backends()


class Counter(threading.Thread):
    """A pure-Python loop: its progress shows how much of the time it held the GIL."""

    def __init__(self):
        super().__init__(daemon=True)
        self.count = 0
        self.running = True

    def run(self):
        while self.running:
            self.count += 1


def counts_per_second(counter, work, duration):
    """The counter's progress per second, measured across calls of `work` only."""
    counted = elapsed = 0.0
    while elapsed < duration:
        c0, t0 = counter.count, time.perf_counter()
        work()
        counted += counter.count - c0
        elapsed += time.perf_counter() - t0
    return counted / elapsed


def long_kernel_call(backend):
    """One kernel call of ~0.1 s on Numba (16K float64 rows of 256, a top-k each), at the
    backend's module level. It must be long: after each call the counter thread runs until the
    OS wakes the calling thread to take the GIL back, a few ms on a loaded machine, which a
    GIL-holding kernel of a few ms would hide."""
    topk = _backend.kernels_of(backend, "topk")
    x = np.random.default_rng(0).standard_normal(1 << 21)
    mask = np.empty(x.size, np.bool_)
    return lambda: topk.topk_rows(x, x.size // 256, 256, 1, 25, mask)


@pytest.fixture
def one_kernel_thread():
    """Kernels on one thread, so the counter has a core of its own even on a 2-core machine;
    a short switch interval, so the GIL changes hands between calls without a 5 ms wait."""
    threads, interval = tp.get_num_threads(), sys.getswitchinterval()
    tp.set_num_threads(1)
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(interval)
    tp.set_num_threads(threads)


@pytest.mark.parametrize("backend", BACKENDS)
def test_another_python_thread_runs_while_a_kernel_works(backend, one_kernel_thread):
    call = long_kernel_call(backend)
    call()  # compile (Numba) and fault the pages in, outside the measurement
    counter = Counter()
    counter.start()
    try:
        idle = lambda: time.sleep(0.01)  # noqa: E731
        before = counts_per_second(counter, idle, 0.15)
        during = counts_per_second(counter, call, 0.4)
        after = counts_per_second(counter, idle, 0.15)  # before and after: the load may drift
    finally:
        counter.running = False
        counter.join()
    ratio = during / ((before + after) / 2)
    # Releasing the GIL gives 0.3-1.0 of the solo rate (the low end when other processes load
    # both cores); holding it, 0.01-0.03 (Numba without nogil). 0.1 sits between with a factor
    # of three on either side.
    assert ratio > 0.1, f"{backend}: another thread ran at {ratio:.1%} of its solo rate during the kernel"


def numba_modules():
    """Every module of tensorpress._numba, family packages' submodules included."""
    import pkgutil

    import tensorpress._numba as package

    names = [info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return [importlib.import_module(name) for name in names]


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba not installed")
def test_every_numba_kernel_is_compiled_without_the_gil():
    # Covers the kernels the timing test does not call (parallel forms, helpers, Huffman).
    from numba.core.dispatcher import Dispatcher

    kernels = {f"{module.__name__}.{name}": obj for module in numba_modules()
               for name, obj in vars(module).items() if isinstance(obj, Dispatcher)}
    families = {name.split(".")[2] for name in kernels}
    assert families >= {"adam", "quant", "topk", "huffman"}, families
    holding = sorted(name for name, k in kernels.items() if not k.targetoptions.get("nogil"))
    assert not holding, f"kernels that hold the GIL: {holding}"
