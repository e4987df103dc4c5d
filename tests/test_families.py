"""Both backends' family modules offer exactly the functions of tensorpress._families, with the
same parameters, so the public layer can call either without knowing which runs."""

import inspect

import pytest

from tensorpress import _backend, _families

BACKENDS = _backend.available_backends()


def public_functions(module):
    """The module's own public Python functions (imports and jitted kernels left out)."""
    package = module.__name__
    return {name: obj for name, obj in vars(module).items()
            if inspect.isfunction(obj) and not name.startswith("_")
            and obj.__module__.startswith(package) and obj.__module__ != package.rsplit(".", 1)[0]}


def contract(protocol):
    return {name: obj for name, obj in vars(protocol).items()
            if inspect.isfunction(obj) and not name.startswith("_")}


def parameters(function, drop_self=False):
    params = list(inspect.signature(function).parameters.values())
    return [(p.name, p.kind, p.default) for p in params[1 if drop_self else 0:]]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("family", sorted(_families.FAMILIES))
def test_family_module_matches_the_contract(backend, family):
    module = _backend.kernels_of(backend, family)
    expected = contract(_families.FAMILIES[family])
    offered = public_functions(module)
    extra = set(offered) - set(expected) - _families.BACKEND_ONLY.get((backend, family), set())
    assert not extra, f"{module.__name__} offers functions outside the contract: {sorted(extra)}"
    missing = set(expected) - set(offered)
    assert not missing, f"{module.__name__} lacks {sorted(missing)}"
    for name, spec in expected.items():
        assert parameters(offered[name]) == parameters(spec, drop_self=True), f"{module.__name__}.{name}"


def test_the_public_modules_use_the_live_backends_families():
    import tensorpress.huffman
    import tensorpress.optim
    import tensorpress.prune
    import tensorpress.quant

    assert tensorpress.prune._kernels is _backend.topk is _backend.kernels("topk")
    assert tensorpress.quant._k is _backend.quant
    assert tensorpress.optim._kernels is _backend.adam
    assert tensorpress.huffman._kernels is _backend.huffman
    assert _backend.topk.__name__.startswith("tensorpress._native" if _backend.BACKEND == "c" else "tensorpress._numba")


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba not installed")
def test_the_numba_twins_refuse_a_kernel_variant():
    import numpy as np

    import tensorpress as tp

    with pytest.raises(tp.BackendError):
        _backend.kernels_of("numba", "topk").topk_select([np.ones(8, np.float32)], 3, None, isa="avx2")
