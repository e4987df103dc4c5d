"""Top-k masks: tensorpress C and Numba vs the naive NumPy mask (np.partition threshold) vs a
mask from torch.topk. The same cases as `tensorpress bench` (src/tensorpress/_bench/topk.py)."""

import pytest

from tensorpress import _backend
from tensorpress._bench import topk as cases

N = 1 << 24
X, WORK = cases.cases(N)
# (label, tensorpress call, NumPy call, torch call): the table's cases, then their bfloat16 twins
# (tensorpress only)
CASES = [(label, ours, naive, peer) for label, _, _, ours, naive, peer, _ in WORK]
CASES += [(twin[0], twin[2], None, None) for *_, twin in WORK if twin]
IMPLS = ["c", "numba", "numpy", "torch"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", range(len(CASES)), ids=[c[0] for c in CASES])
def bench_topk(benchmark, case, impl):
    label, ours, naive, peer = CASES[case]
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
