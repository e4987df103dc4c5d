"""Fused Adam step: tensorpress C and Numba vs naive NumPy vs torch's fused CPU Adam."""

import pytest

from tensorpress import _backend
from tensorpress._bench import adam as cases
from tensorpress._bench.models import minilm_l6_shapes

SIZES = [1, 1 << 10, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24]
WORKLOADS = {f"n={n}": [(n,)] for n in SIZES}
WORKLOADS["minilm-l6"] = [s for _, s in minilm_l6_shapes()]
WORKLOADS["200x384"] = [(384,)] * 200
IMPLS = ["c", "numba", "numpy", "torch"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("workload", list(WORKLOADS))
def bench_adam_step(benchmark, workload, impl):
    benchmark.group = f"adam {workload}"
    cols = cases.make_tensors(WORKLOADS[workload])
    if impl in ("c", "numba"):
        if impl not in _backend.available_backends():
            pytest.skip(f"{impl} backend unavailable")
        with cases.using_backend(impl):
            from tensorpress import optim

            optim.adam_step(*cols, step=10)  # compile / warm up
            benchmark(lambda: optim.adam_step(*cols, step=10))
    elif impl == "numpy":
        def run():
            for p, g, m, v in zip(*cols):
                cases.naive_adam(p, g, m, v, 10)
        benchmark(run)
    else:
        torch = pytest.importorskip("torch")
        params = [torch.from_numpy(p.copy()).requires_grad_() for p in cols[0]]
        for p, g in zip(params, cols[1]):
            p.grad = torch.from_numpy(g)
        opt = torch.optim.Adam(params, lr=1e-3, fused=True)
        benchmark(opt.step)
