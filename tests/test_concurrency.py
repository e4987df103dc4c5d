"""Kernels release the GIL, so users call them from several Python threads at once (data
loaders, servers, pipelines). Calls running side by side must give exactly what they give one
at a time: no shared workspace, no shared state between calls."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

import tensorpress as tp


def jobs(seed):
    """(name, call) pairs over this seed's own arrays; each call returns arrays to compare."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(300_000).astype(np.float32)  # above the sampled path's threshold
    half = x[:200_000].astype(np.float16)
    rows = x[:256 * 1024].reshape(256, 1024)
    w = rng.standard_normal((512, 300)).astype(np.float32)
    symbols = np.clip(np.round(rng.standard_normal(100_000) * 20), -127, 127).astype(np.int8)
    state = [rng.standard_normal(50_000).astype(np.float32) for _ in range(2)]
    state += [np.zeros(50_000, np.float32), np.zeros(50_000, np.float32)]

    def adam():
        p, g, m, v = (a.copy() for a in state)
        for step in range(1, 4):
            tp.adam_step(p, g, m, v, step=step, lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True)
        return p, m, v

    def quant():
        q, scale = tp.quantize_int8(w, axis=0)
        return q, scale, tp.dequantize_int8(q, scale, axis=0)

    return [
        ("topk", lambda: (tp.topk_mask(x, 0.1), tp.topk_mask(half, 0.3), tp.topk_mask(rows, 100, axis=1))),
        ("global", lambda: tuple(tp.global_topk_masks([x[:1000], x, w.reshape(-1)], 0.2))),
        ("nm", lambda: (tp.nm_mask(x[:299_996]), tp.nm_mask(half))),
        ("adam", adam),
        ("quant", quant),
        ("huffman", lambda: (tp.huffman_decode(tp.huffman_encode(symbols)), np.frombuffer(tp.huffman_encode(symbols), np.uint8))),
    ]


def test_calls_from_several_threads_match_serial_calls():
    work = [(seed, name, call) for seed in range(3) for name, call in jobs(seed)]
    expected = {(seed, name): call() for seed, name, call in work}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):  # a few rounds, so calls overlap in different orders
            futures = {(seed, name): pool.submit(call) for seed, name, call in reversed(work)}
            for key, future in futures.items():
                got, want = future.result(), expected[key]
                assert len(got) == len(want)
                for a, b in zip(got, want):
                    np.testing.assert_array_equal(a, b, err_msg=str(key))
