"""The Numba backend: jitted twins of the C kernels, giving the same results.

Serial kernels are cached on disk (cache=True); parallel ones are not, because Numba's
parallel kernels and its cache do not mix safely. Each family module exposes the same
functions as its C counterpart in tensorpress._native.
"""

PARALLEL_CHUNK = 16384  # elements per prange task: large enough to amortise scheduling
