"""tp.save() streams: each compressed record goes to the file as it is made, so memory never
holds the whole compressed checkpoint."""

import threading
import time
import tracemalloc

import numpy as np
import pytest

import tensorpress as tp
from tensorpress import container, pipeline


def weights(count, shape=(256, 256), seed=0):
    rng = np.random.default_rng(seed)
    return {f"layer{i}.weight": rng.standard_normal(shape, dtype=np.float32) for i in range(count)}


def save_peak(path, tensors, **options):
    """Peak traced bytes allocated while tp.save() runs (NumPy buffers included)."""
    tracemalloc.start()
    try:
        tp.save(path, tensors, **options)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_save_does_not_hold_every_record(tmp_path):
    # The peak of saving one tensor is the working set of compressing one tensor; saving 48 must
    # add only their index entries, not their compressed bytes (~58 kB each, 2.8 MB in all),
    # which a writer that collects the records first would hold at once.
    tensors = weights(48)
    one = dict(list(tensors.items())[:1])
    tp.save(tmp_path / "warm.tpz", one, threads=1)  # JIT compilation, imports, caches
    base = save_peak(tmp_path / "one.tpz", one, threads=1)
    peak = save_peak(tmp_path / "all.tpz", tensors, threads=1)
    with container.Reader(tmp_path / "all.tpz") as reader:
        compressed = sum(r.stored_bytes for r in reader.records)
    assert compressed > 2_000_000
    assert peak - base < compressed / 4, (base, peak, compressed)
    restored = tp.load(tmp_path / "all.tpz", names=["layer47.weight"])["layer47.weight"]
    np.testing.assert_allclose(restored, tensors["layer47.weight"], atol=np.abs(tensors["layer47.weight"]).max() / 127)


def test_parallel_records_wait_for_the_writer():
    # With a slow consumer (a slow disk), the worker threads run at most 2 * threads tensors
    # ahead of it instead of compressing everything and queueing the results.
    started, consumed, ahead = [0], [0], []
    lock = threading.Lock()

    def work(item):
        with lock:
            started[0] += 1
            ahead.append(started[0] - consumed[0])
        return item

    out = []
    for item in pipeline._ordered_map(work, range(40), threads=2):
        time.sleep(0.002)
        out.append(item)
        consumed[0] += 1
    assert out == list(range(40))
    assert max(ahead) <= 2 * 2 + 1


def test_an_error_mid_stream_leaves_the_old_file(tmp_path):
    path = tmp_path / "model.tpz"
    tp.save(path, weights(2, (64, 64)))
    before = path.read_bytes()
    bad = weights(6, (64, 64), seed=1)
    bad["layer4.weight"][3, 3] = np.nan  # raises when its turn comes, after records were written
    with pytest.raises(ValueError, match="layer4.weight"):
        tp.save(path, bad, threads=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.tpz"]  # no temporary left behind


def test_records_keep_their_order_and_match_compress(tmp_path):
    tensors = weights(9, (48, 40), seed=2)
    tensors["bias"] = np.ones(40, np.float32)
    tp.save(tmp_path / "m.tpz", tensors, sparsity=0.5, threads=3)
    with container.Reader(tmp_path / "m.tpz") as reader:
        assert reader.names() == list(tensors)
    loaded = tp.load(tmp_path / "m.tpz")
    from_bytes = tp.decompress(tp.compress(tensors, sparsity=0.5, threads=1))
    for name in tensors:
        np.testing.assert_array_equal(loaded[name], from_bytes[name])
