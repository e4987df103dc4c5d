"""Sharded checkpoints (the Hugging Face layout: shards + model.safetensors.index.json) into one
.tpz and back into shards: the layout is restored, tensors come back in their dtype (bit-exact
when stored losslessly), hostile indexes and .tpz layouts fail with one line and exit 1, and a
directory output is all or nothing. The commands run in-process through cli.main."""

import json
import os

import ml_dtypes
import numpy as np
import pytest

import tensorpress as tp
from tensorpress import checkpoints, container, pipeline
from test_cli_hostile import one_error_line, run_cli, tpz_index, with_index

BF16 = ml_dtypes.bfloat16
INDEX = "model.safetensors.index.json"
SHARDS = ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"]
LOSSLESS = ("--keep-small", str(2**62))


def model():
    """{shard: {name: array}}: bfloat16, float16, float32 and integer tensors, special values included."""
    rng = np.random.default_rng(17)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -3.5], np.float32)
    emb = rng.standard_normal((64, 48)).astype(BF16)
    emb.reshape(-1)[:special.size] = special.astype(BF16)
    emb.view(np.uint16).reshape(-1)[special.size] = 0x7FC1  # a NaN with a payload
    return {SHARDS[0]: {"embed.weight": emb, "position_ids": np.arange(64, dtype=np.int64)},
            SHARDS[1]: {"layers.0.weight": rng.standard_normal((48, 48)).astype(BF16),
                        "layers.0.bias": rng.standard_normal(48).astype(np.float16)},
            SHARDS[2]: {"head.weight": rng.standard_normal((40, 48)).astype(np.float16),
                        "norm.weight": rng.standard_normal(48).astype(np.float32)}}


def write_model(directory, shards=None, weight_map=None, index=None):
    os.makedirs(directory, exist_ok=True)
    shards = model() if shards is None else shards
    for shard, tensors in shards.items():
        checkpoints.write(os.path.join(directory, shard), tensors, {"format": "pt"})
    if weight_map is None:
        weight_map = {name: shard for shard, tensors in shards.items() for name in tensors}
    if index is None:
        index = {"metadata": {"total_size": 1234}, "weight_map": weight_map}
    with open(os.path.join(directory, INDEX), "w") as f:
        json.dump(index, f)
    return {name: a for tensors in shards.values() for name, a in tensors.items()}


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_lossless_round_trip_restores_shards_index_and_bits(tmp_path):
    tensors = write_model(tmp_path / "in")
    for source in (tmp_path / "in", tmp_path / "in" / INDEX):  # the directory or its index
        status, _, err = run_cli("compress", source, "-o", tmp_path / "m.tpz", *LOSSLESS)
        assert status == 0, err
    status, _, err = run_cli("decompress", tmp_path / "m.tpz", "-o", tmp_path / "out")
    assert status == 0, err
    assert sorted(os.listdir(tmp_path / "out")) == sorted(SHARDS + [INDEX])
    with open(tmp_path / "out" / INDEX) as f:
        index = json.load(f)
    assert index["weight_map"] == {name: shard for shard, ts in model().items() for name in ts}
    assert index["metadata"]["total_size"] == sum(a.nbytes for a in tensors.values())
    for shard, expected in model().items():
        got = checkpoints.read(tmp_path / "out" / shard)
        assert sorted(got) == sorted(expected)
        assert got.info == {"metadata": {"format": "pt"}}
        for name, value in expected.items():
            assert same_bits(got[name], value), name
    # a .safetensors output path gives one file of every tensor; the API returns the same bits
    assert run_cli("decompress", tmp_path / "m.tpz", "-o", tmp_path / "one.safetensors")[0] == 0
    one = checkpoints.read(tmp_path / "one.safetensors")
    loaded = tp.load(tmp_path / "m.tpz")
    assert one.info == {"metadata": {"format": "pt"}} and sorted(one) == sorted(tensors)
    for name, value in tensors.items():
        assert same_bits(one[name], value) and same_bits(loaded[name], value), name


def test_lossy_round_trip_gives_back_each_tensors_dtype(tmp_path):
    tensors = write_model(tmp_path / "in")
    status, _, err = run_cli("compress", tmp_path / "in", "-o", tmp_path / "m.tpz", "--keep-small", "100",
                             "--keep", "embed.weight")  # it holds NaN and Inf
    assert status == 0, err
    status, _, err = run_cli("decompress", tmp_path / "m.tpz", "-o", tmp_path / "out", "--names",
                             "layers.0.weight", "head.weight", "norm.weight")
    assert status == 0, err
    # only the shards of the tensors asked for; the index lists just those
    assert sorted(os.listdir(tmp_path / "out")) == sorted(SHARDS[1:] + [INDEX])
    float32 = tp.load(tmp_path / "m.tpz")
    for name in ("layers.0.weight", "head.weight", "norm.weight"):
        shard = checkpoints.read(tmp_path / "out" / [s for s, ts in model().items() if name in ts][0])
        assert float32[name].dtype == np.float32
        # rounded to nearest even from what tp.load gives (the kernels' dequantize_int8(dtype=))
        assert same_bits(shard[name], float32[name].astype(tensors[name].dtype)), name


def test_a_tpz_without_shards_is_not_written_to_a_directory(tmp_path):
    checkpoints.write(tmp_path / "one.safetensors", {"w": np.ones(3, BF16)})
    assert run_cli("compress", tmp_path / "one.safetensors", "-o", tmp_path / "one.tpz")[0] == 0
    status, _, err = run_cli("decompress", tmp_path / "one.tpz", "-o", tmp_path / "out")
    assert status == 1 and one_error_line(err, tmp_path / "one.tpz") and "sharded" in err, err
    assert not (tmp_path / "out").exists()


# --- hostile sharded inputs -------------------------------------------------------------------

def index_with(**changes):
    weight_map = {name: shard for shard, ts in model().items() for name in ts}
    weight_map.update(changes)
    return weight_map


HOSTILE_INDEXES = {  # what: (how write_model makes it, what the error says)
    "missing shard": (dict(weight_map=index_with(**{"head.weight": "model-00009-of-00009.safetensors"})), "does not hold"),
    "shard lacks a tensor": (dict(weight_map=index_with(**{"ghost.weight": SHARDS[0]})), "does not hold it"),
    "tensor the index omits": (dict(weight_map={k: v for k, v in index_with().items() if k != "norm.weight"}), "does not list"),
    "tensor placed in another shard": (dict(weight_map=index_with(**{"norm.weight": SHARDS[0]})), "places in"),
    "duplicate across shards": (dict(shards={**model(), SHARDS[2]: {**model()[SHARDS[2]], "embed.weight": np.ones(2, BF16)}}),
                                "in two shards"),
    "path traversal": (dict(weight_map=index_with(**{"norm.weight": "../outside.safetensors"})), "not the name"),
    "absolute path": (dict(weight_map=index_with(**{"norm.weight": "/tmp/outside.safetensors"})), "not the name"),
    "subdirectory": (dict(weight_map=index_with(**{"norm.weight": "sub/x.safetensors"})), "not the name"),
    "not a safetensors shard": (dict(weight_map=index_with(**{"norm.weight": "model.bin"})), "not the name"),
    "shard name not a string": (dict(weight_map=index_with(**{"norm.weight": 7})), "not the name"),
    "weight_map a list": (dict(index={"weight_map": [SHARDS[0]]}), "weight_map"),
    "no weight_map": (dict(index={"metadata": {}}), "weight_map"),
    "metadata not an object": (dict(index={"metadata": [1], "weight_map": index_with()}), "metadata"),
    "index a list": (dict(index=[1, 2]), "weight_map"),
    "not JSON": (dict(raw=b'{"weight_map": {'), "not valid JSON"),
    "NaN": (dict(raw=b'{"metadata": {"x": NaN}, "weight_map": {}}'), "NaN"),
    "duplicate key": (dict(raw=('{"weight_map": {"norm.weight": "%s", "norm.weight": "%s"}}' % (SHARDS[2], SHARDS[2])).encode()),
                      "twice"),
    "deep nesting": (dict(raw=b'{"metadata": ' + b"[" * 100 + b"]" * 100 + b', "weight_map": {}}'), "nests"),
}


@pytest.mark.parametrize("what", HOSTILE_INDEXES)
def test_hostile_indexes_fail_with_one_line(tmp_path, what):
    how, says = HOSTILE_INDEXES[what]
    directory = tmp_path / "in"
    write_model(directory, **{k: v for k, v in how.items() if k != "raw"})
    if "raw" in how:
        (directory / INDEX).write_bytes(how["raw"])
    # a valid shard outside the directory: reading it would make the traversal cases pass
    checkpoints.write(tmp_path / "outside.safetensors", {"norm.weight": np.ones(48, np.float32)})
    (directory / "sub").mkdir()
    checkpoints.write(directory / "sub" / "x.safetensors", {"norm.weight": np.ones(48, np.float32)})
    for source in (directory, directory / INDEX):
        status, _, err = run_cli("compress", source, "-o", tmp_path / "out.tpz")
        assert status == 1 and one_error_line(err, source) and says in err, (what, err)
    assert not (tmp_path / "out.tpz").exists()


def test_a_directory_needs_exactly_one_index(tmp_path):
    (tmp_path / "empty").mkdir()
    write_model(tmp_path / "two")
    (tmp_path / "two" / "other.safetensors.index.json").write_text((tmp_path / "two" / INDEX).read_text())
    for directory, says in ((tmp_path / "empty", "none"), (tmp_path / "two", "other.safetensors.index.json")):
        status, _, err = run_cli("compress", directory, "-o", tmp_path / "out.tpz")
        assert status == 1 and one_error_line(err, directory) and says in err, err


FORGED_LAYOUTS = {
    "traversal in a shard name": lambda s: s["files"].update({"../evil.safetensors": None})
    or s["weight_map"].update({"norm.weight": "../evil.safetensors"}),
    "traversal in the index name": lambda s: s.update(index="../evil.index.json"),
    "hidden index name": lambda s: s.update(index=".index.json"),
    "tensor in no shard": lambda s: s["weight_map"].pop("norm.weight"),
    "shard not listed": lambda s: s["weight_map"].update({"norm.weight": "other.safetensors"}),
    "files a list": lambda s: s.update(files=[]),
    "metadata not strings": lambda s: s["files"].update({SHARDS[0]: {"format": 1}}),
    "layout not an object": lambda s: s.clear(),
}


@pytest.mark.parametrize("what", FORGED_LAYOUTS)
def test_forged_tpz_layouts_fail_cleanly_and_write_nothing(tmp_path, what):
    write_model(tmp_path / "in")
    assert run_cli("compress", tmp_path / "in", "-o", tmp_path / "m.tpz", *LOSSLESS)[0] == 0
    data = (tmp_path / "m.tpz").read_bytes()
    _, index = tpz_index(data)
    FORGED_LAYOUTS[what](index["checkpoint"]["shards"])
    if what == "layout not an object":
        index["checkpoint"]["shards"] = "x"
    forged = tmp_path / "forged.tpz"
    forged.write_bytes(with_index(data, index))
    assert run_cli("info", forged)[0] == 0  # the records themselves are fine
    status, _, err = run_cli("decompress", forged, "-o", tmp_path / "out")
    assert status == 1 and one_error_line(err, forged), (what, err)
    assert sorted(os.listdir(tmp_path)) == ["forged.tpz", "in", "m.tpz"]


# --- all or nothing ---------------------------------------------------------------------------

def damaged_in_the_second_shard(tmp_path):
    """A .tpz of model() whose 'head.weight' record (third shard) fails its checksum."""
    write_model(tmp_path / "in")
    assert run_cli("compress", tmp_path / "in", "-o", tmp_path / "m.tpz", *LOSSLESS)[0] == 0
    data = bytearray((tmp_path / "m.tpz").read_bytes())
    with container.Reader(bytes(data)) as reader:
        offset, _, _ = reader.record("head.weight").parts["data"]
    data[offset] ^= 0xFF
    (tmp_path / "bad.tpz").write_bytes(data)
    return tmp_path / "bad.tpz"


def test_a_failure_part_way_leaves_no_output(tmp_path):
    bad = damaged_in_the_second_shard(tmp_path)
    status, _, err = run_cli("decompress", bad, "-o", tmp_path / "new")
    assert status == 1 and "checksum" in err, err
    assert not (tmp_path / "new").exists()  # the directory it created is gone again
    old = tmp_path / "old"
    write_model(old)
    (old / "config.json").write_text("{}")
    before = {p: (old / p).read_bytes() for p in os.listdir(old)}
    assert run_cli("decompress", bad, "-o", old)[0] == 1
    assert {p: (old / p).read_bytes() for p in os.listdir(old)} == before  # and no temporaries


def test_an_interruption_leaves_the_old_files(tmp_path, monkeypatch):
    write_model(tmp_path / "in")
    assert run_cli("compress", tmp_path / "in", "-o", tmp_path / "m.tpz", *LOSSLESS)[0] == 0
    old = tmp_path / "old"
    write_model(old, shards={SHARDS[0]: {"embed.weight": np.zeros(3, BF16)}})
    before = {p: (old / p).read_bytes() for p in os.listdir(old)}
    real, calls = checkpoints._write_safetensors, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 3:  # two shards written completely, the last one not
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(checkpoints, "_write_safetensors", interrupted)
    status, _, err = run_cli("decompress", tmp_path / "m.tpz", "-o", old)
    assert status == 130 and "interrupted" in err
    assert {p: (old / p).read_bytes() for p in os.listdir(old)} == before


def test_decompression_to_shards_holds_one_tensor_at_a_time(tmp_path):
    # tracemalloc sees NumPy's buffers: decompressing 32 tensors into shards may take only a
    # little more than decompressing one, not their decoded size (32 MB), as it would if they
    # were all decoded before the shards are written
    import tracemalloc

    rng = np.random.default_rng(5)
    tensors = {f"layer{i}.weight": rng.standard_normal((512, 512)).astype(np.float32) for i in range(32)}
    shards = {name: SHARDS[i % 3] for i, name in enumerate(tensors)}
    layout = {"shards": {"index": INDEX, "metadata": None, "files": dict.fromkeys(SHARDS), "weight_map": shards}}
    container.write_file(tmp_path / "m.tpz", pipeline.iter_records(tensors, keep_small=2**62), checkpoint=layout)

    def peak(names, out):
        with container.Reader(tmp_path / "m.tpz") as reader:
            decoded = pipeline.Decoded(reader, names, source_dtypes=True)
            tracemalloc.start()
            try:
                checkpoints.write_sharded(out, decoded, checkpoints.shards_of(reader.checkpoint, names))
                return tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

    one = peak(["layer0.weight"], tmp_path / "one")
    every = peak(list(tensors), tmp_path / "all")
    assert every - one < 4 * 2**20, (one, every)
    got = checkpoints.read(tmp_path / "all" / SHARDS[1])
    assert same_bits(got["layer31.weight"], tensors["layer31.weight"])
