"""Shared fixtures. The whole suite runs once per backend: TENSORPRESS_BACKEND selects it
(CI runs it with the default, the C backend, and again with =numba). Tests that compare the two
backends directly use ``tensorpress._backend.kernels_of``."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # so tests can `import reference.<family>`

import tensorpress as tp  # noqa: E402
from tensorpress import _backend  # noqa: E402


def pytest_report_header(config):
    return f"tensorpress backend: {tp.backend} (available: {', '.join(_backend.available_backends())})"


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def isa_variants():
    """The C kernel variants this machine runs, when the C backend is the live one (the suite
    that tests the C kernels); empty without the C extension and on the Numba run, which tests
    the twins: CI runs the suite once per backend, and the variants need checking once."""
    if tp.backend != "c":
        return []
    from tensorpress import _native

    return _native.available_isas()


requires_c = pytest.mark.skipif("c" not in _backend.available_backends(), reason="C extension not built")
# Tests of the C kernel variants alone: they run where isa_variants() does, in the C backend's run.
variants_run = pytest.mark.skipif(tp.backend != "c", reason="the C variants are checked in the C backend's run")
