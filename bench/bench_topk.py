"""Top-k masks: tensorpress C and Numba vs the naive NumPy mask (np.partition threshold) vs a
mask from torch.topk. The same cases as `tensorpress bench` (src/tensorpress/_bench/topk.py)."""

import pytest

from tensorpress import _backend
from tensorpress._bench import topk as cases

N = 1 << 24
X, WORK = cases.cases(N)
IMPLS = ["c", "numba", "numpy", "torch"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", range(len(WORK)), ids=[w[0] for w in WORK])
def bench_topk(benchmark, case, impl):
    label, _, ours, naive, peer = WORK[case]
    benchmark.group = label
    if impl in ("c", "numba"):
        if impl not in _backend.available_backends():
            pytest.skip(f"{impl} backend unavailable")
        with cases.using_backend(impl):
            ours()  # compile / warm up
            benchmark(ours)
    elif impl == "numpy":
        if naive is None:
            pytest.skip("no NumPy counterpart")
        benchmark.pedantic(naive, rounds=3, iterations=1)
    else:
        torch = pytest.importorskip("torch")
        if peer is None:
            pytest.skip("no torch counterpart")
        t = torch.from_numpy(X)
        benchmark.pedantic(lambda: peer(torch, t), rounds=2, iterations=1)
