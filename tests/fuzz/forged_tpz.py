"""Forged .tpz files and Huffman streams: every checksum valid, every field hostile.

A forgery that only flips bits is caught by the CRCs; these files pass them and lie instead:
index fields of the wrong type or range, deep nesting, dtypes and ranks the format does not
allow, names UTF-8 cannot encode, parts that disagree with their record, and Huffman streams
whose declared counts are huge or disagree with the record (single-symbol blocks claiming 16 MiB
in 6 bytes, with right and wrong checksums). `run_all()` decodes each one and sorts the outcome:
CorruptDataError, or a result that matches its record when the forgery happens to be valid;
anything else (another exception, a wrong result, a large allocation) is a finding.

Used by tests/test_forged_tpz.py, which runs this in a subprocess under a memory limit:

    python tests/fuzz/forged_tpz.py [--seed N] [--hypothesis-examples N]   # prints a JSON summary
"""

import argparse
import functools
import json
import random
import sys
import time
import tracemalloc
import zlib

import numpy as np

import tensorpress as tp
from tensorpress import container
from tensorpress.errors import CorruptDataError

# Python allocations a single decode may make (tracemalloc sees numpy's arrays too): the files
# here decode to at most a few hundred KB, so a peak above this is an allocation a lie caused.
PEAK_LIMIT = 64 << 20


# ---- building blocks --------------------------------------------------------------------

def tpz(payload, index):
    """A container around `payload` with `index` (an object, or JSON text) and valid CRCs."""
    body = index.encode("utf-8", "surrogatepass") if isinstance(index, str) \
        else json.dumps(index).encode("utf-8")
    offset = container.HEADER_SIZE + len(payload)
    return (container.MAGIC + (1).to_bytes(4, "little") + bytes(4) + payload + body
            + offset.to_bytes(8, "little") + len(body).to_bytes(8, "little")
            + zlib.crc32(body).to_bytes(4, "little") + container.END_MAGIC)


def huffman_stream(count, blocks, shape=None, dtype_code=0, block_log2=18, sizes=None):
    """A Huffman stream (docs/huffman.md) with a valid header checksum around `blocks`;
    `sizes` overrides the block-size table (which must still add up for parse() to pass)."""
    shape = [count] if shape is None else shape
    sizes = [len(b) for b in blocks] if sizes is None else sizes
    head = (b"TPHF" + bytes((2, dtype_code, len(shape), block_log2)) + count.to_bytes(8, "little")
            + b"".join(d.to_bytes(8, "little") for d in shape)
            + b"".join(s.to_bytes(4, "little") for s in sizes))
    return head + zlib.crc32(head).to_bytes(4, "little") + b"".join(blocks)


@functools.lru_cache(maxsize=None)
def rle_block(symbol, length, good_crc=True):
    crc = zlib.crc32(bytes((symbol,)) * length) if good_crc else 12345
    return bytes((1,)) + crc.to_bytes(4, "little") + bytes((symbol,))


def raw_block(data, crc=None):
    return bytes((0,)) + (zlib.crc32(data) if crc is None else crc).to_bytes(4, "little") + data


def huff_block_claiming(payload=32):
    """A Huffman block whose payload is far too small for a large block: lengths of a complete
    two-symbol code, s0 = s1 = s2 = 0."""
    return bytes((2,)) + bytes(4) + bytes((0x11,)) + bytes(127) + bytes(12) + bytes(payload)


def rle_bomb(count, block_log2, good_crc):
    """Single-symbol blocks: 10 bytes of stream per 2**block_log2 symbols."""
    bs = 1 << block_log2
    n_blocks = -(-count // bs)
    blocks = [rle_block(0, min(bs, count - b * bs), good_crc) for b in range(n_blocks)]
    return huffman_stream(count, blocks, block_log2=block_log2)


# ---- a valid file to mutate ---------------------------------------------------------------

def base_file():
    """A valid container with every codec: (payload bytes, index object)."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(16, 80)).astype(np.float32)
    tensors = {
        "dense": w, "sparse": w.copy(), "block": w.copy(), "tensor1d": w[0].copy(),
        "raw": np.arange(6, dtype=np.int16), "huff": np.zeros(4000, np.uint8),
        "scalar": np.float32(2.5),
    }
    blobs = [
        tp.compress({k: tensors[k] for k in ("dense", "tensor1d", "raw", "huff", "scalar")}, keep_small=64),
        tp.compress({"sparse": tensors["sparse"]}, sparsity=0.9, keep_small=0),
        tp.compress({"block": tensors["block"]}, block_size=32, keep_small=0),
    ]
    payload, records = b"", []
    for blob in blobs:  # merge the three files' records into one
        reader = container.Reader(blob)
        for r in reader.records:
            parts = {}
            for part in r.parts:
                data = reader.part(r, part)
                parts[part] = {"offset": container.HEADER_SIZE + len(payload), "size": len(data),
                               "crc32": zlib.crc32(data)}
                payload += data
            records.append({"name": r.name, "shape": list(r.shape), "dtype": r.dtype, "codec": r.codec,
                            "params": r.params, "parts": parts})
    return payload, {"format": "tensorpress", "version": 1, "records": records}


def deep(depth, leaf=0):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


HOSTILE = [
    None, True, 0, 1, -1, 255, 2**32, 2**50 + 1, 2**63, -2**63, 1.5, 1e308, "", "x", "\ud800",
    [], [1] * 65, [2**40, 2**40], [-1], [0.5], [True], {}, {"a": 1}, deep(40), "O", "(2,)f4",
    ">f4", "V8", "M8[ns]", "U4", "complex64", "float32", "int8", "lossless", "int8-sparse", "block",
]


# ---- the forgeries ---------------------------------------------------------------------------

def _copy(index):
    return json.loads(json.dumps(index))


def field_forgeries(payload, index, rng):
    """Each record field (and each param and part field) set to each hostile value."""
    for i, record in enumerate(index["records"]):
        paths = [("name",), ("shape",), ("dtype",), ("codec",), ("params",), ("parts",)]
        paths += [("params", k) for k in list(record["params"]) + ["nnz", "huffman", "group", "bits"]]
        paths += [("shape", 0)] if record["shape"] else []
        paths += [("params", "scale_shape", 0)] if record["params"].get("scale_shape") else []
        for part in record["parts"]:
            paths += [("parts", part), ("parts", part, "offset"), ("parts", part, "size"), ("parts", part, "crc32")]
        for path in paths:
            for value in HOSTILE:
                forged = _copy(index)
                target = forged["records"][i]
                for key in path[:-1]:
                    target = target[key]
                target[path[-1]] = value
                yield f"record {record['name']} {'/'.join(map(str, path))} = {value!r:.40}", tpz(payload, forged)
        # a part's bytes replaced by another part's (a valid checksum, the wrong content)
        for part in record["parts"]:
            for other in rng.sample([p for r in index["records"] for p in r["parts"].values()], 4):
                forged = _copy(index)
                forged["records"][i]["parts"][part] = dict(other)
                yield f"record {record['name']} part {part} = another part", tpz(payload, forged)


def index_forgeries(payload, index):
    """The index's own structure: wrong types, deep nesting, duplicates, overlaps."""
    records = index["records"]
    for value in HOSTILE:
        for key in ("format", "version", "records"):
            forged = dict(index)
            forged[key] = value
            yield f"index {key} = {value!r:.40}", tpz(payload, forged)
        yield f"index record = {value!r:.40}", tpz(payload, dict(index, records=[value]))
    yield "index nested 1000 deep", tpz(payload, '{"format":"tensorpress","version":1,"records":'
                                        + "[" * 1000 + "]" * 1000 + "}")
    yield "index nested 100000 deep", tpz(payload, "[" * 100000 + "]" * 100000)
    yield "index with NaN", tpz(payload, json.dumps(index).replace('"version": 1', '"version": NaN'))
    yield "index with a lone surrogate escape", tpz(payload, json.dumps(index).replace('"dense"', '"\\udc80"'))
    yield "index a huge integer", tpz(payload, json.dumps(index).replace('"version": 1', '"version": ' + "9" * 5000))
    yield "duplicate records", tpz(payload, dict(index, records=records + records[:1]))
    renamed = _copy(records[0])
    renamed["name"] = "copy"
    yield "two records share parts", tpz(payload, dict(index, records=records + [renamed]))


def stream_forgeries(payload, index):
    """Records whose Huffman parts are forged streams (the part's checksum recomputed)."""
    rec = {r["name"]: r for r in index["records"]}
    bombs = {
        "valid 2 GiB single-symbol stream": rle_bomb(1 << 31, 24, True),
        "8 GiB single-symbol stream, wrong checksums": rle_bomb(1 << 33, 24, False),
        "16 MiB claimed by a small Huffman block": huffman_stream(1 << 24, [huff_block_claiming()], block_log2=24),
        "raw block shorter than its count": huffman_stream(1000, [raw_block(bytes(10))]),
        "count 0 with blocks": huffman_stream(0, [], sizes=[]) + raw_block(b"x"),
        "a bytes stream": huffman_stream(80, [raw_block(bytes(80))], dtype_code=2),
        "an int8 stream": huffman_stream(80, [raw_block(bytes(80))], dtype_code=1),
        "a 2-D stream": huffman_stream(80, [raw_block(bytes(80))], shape=[8, 10]),
        "a 32-D stream": huffman_stream(1, [raw_block(b"\x01")], shape=[1] * 32),
        "unknown block type": huffman_stream(80, [bytes((7,)) + bytes(84)]),
        "shape product wraps 64 bits": huffman_stream(0, [], shape=[1 << 40, 1 << 30]),
        "gaps of all escapes": huffman_stream(5000, [raw_block(b"\xff" * 5000)]),
    }
    for name in ("dense", "sparse", "raw", "huff"):
        r = rec[name]
        original = {p: payload[v["offset"] - 16:v["offset"] - 16 + v["size"]] for p, v in r["parts"].items()}
        for part in r["parts"]:
            if part == "scales":
                continue
            for label, stream in bombs.items():
                data, parts = b"", {}
                for p in r["parts"]:  # the forged stream in place of `part`, the others as they were
                    chunk = stream if p == part else original[p]
                    parts[p] = {"offset": 16 + len(data), "size": len(chunk), "crc32": zlib.crc32(chunk)}
                    data += chunk
                forged = dict(r, parts=parts)
                if name == "raw":  # a lossless record that says it is Huffman-coded
                    forged["params"] = {"huffman": True}
                yield f"record {name} part {part}: {label}", tpz(data, dict(index, records=[forged]))
    # the audit's bomb: [10] int64 whose part is a valid 2 GiB stream
    stream = bombs["valid 2 GiB single-symbol stream"]
    yield "[10] int64 with a 2 GiB stream", tpz(stream, {"format": "tensorpress", "version": 1, "records": [
        {"name": "x", "shape": [10], "dtype": "int64", "codec": "lossless", "params": {"huffman": True},
         "parts": {"data": {"offset": 16, "size": len(stream), "crc32": zlib.crc32(stream)}}}]})


def bare_streams():
    """Forged Huffman streams for tp.huffman_decode itself (no record to bound them)."""
    yield "8 GiB of single-symbol blocks, wrong checksums", rle_bomb(1 << 33, 24, False)
    yield "2**50 symbols claimed by 64 Huffman blocks", huffman_stream(
        1 << 30, [huff_block_claiming()] * 64, block_log2=24)
    yield "16 MiB claimed by a small Huffman block", huffman_stream(1 << 24, [huff_block_claiming()], block_log2=24)
    yield "raw block shorter than its count", huffman_stream(1 << 20, [raw_block(bytes(10))] * 4)
    last_bad = [rle_block(0, 1 << 18)] * 63 + [rle_block(0, 1 << 18, good_crc=False)]
    yield "16 MiB of blocks, the last one's checksum wrong", huffman_stream(1 << 24, last_bad)
    mixed = [rle_block(s, 1 << 24) for s in range(30)] + [rle_block(99, 1 << 24, good_crc=False)]
    yield "31 single-symbol blocks of 30 values, the last checksum wrong", huffman_stream(31 << 24, mixed, block_log2=24)


# ---- running them --------------------------------------------------------------------------

def check_tpz(blob):
    """None when decompress raises CorruptDataError or returns what the index describes."""
    try:
        out = tp.decompress(blob)
    except CorruptDataError:
        return None
    records = container.Reader(blob).records
    if list(out) != [r.name for r in records]:
        return f"decoded names {list(out)} differ from the index's"
    for r in records:
        want = np.dtype("float32" if r.codec.startswith("int8") else r.dtype)
        if out[r.name].shape != r.shape or out[r.name].dtype != want:
            return f"{r.name}: decoded {out[r.name].dtype}{out[r.name].shape}, index says {want}{r.shape}"
    return None


def check_stream(blob):
    try:
        tp.huffman_decode(blob)
    except CorruptDataError:
        return None
    return "a forged stream decoded"


def outcome(check, blob):
    """(finding or None, whether it raised CorruptDataError) of one case, with its peak memory."""
    tracemalloc.start()  # only around the decode: tracing the forging too would triple the time
    try:
        finding = check(blob)
    except Exception as exc:  # the finding: anything but CorruptDataError
        finding = f"{type(exc).__name__}: {str(exc)[:200]}"
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    if finding is None and peak > PEAK_LIMIT:
        finding = f"allocated {peak >> 20} MiB"
    return finding


def cases(seed):
    rng = random.Random(seed)
    payload, index = base_file()
    assert check_tpz(tpz(payload, index)) is None  # the unforged file decodes
    yield from ((label, check_tpz, blob) for label, blob in field_forgeries(payload, index, rng))
    yield from ((label, check_tpz, blob) for label, blob in index_forgeries(payload, index))
    yield from ((label, check_tpz, blob) for label, blob in stream_forgeries(payload, index))
    yield from ((label, check_stream, blob) for label, blob in bare_streams())


def hypothesis_run(examples, seed):
    """Random field forgeries: a record field (or a param) set to a random JSON value."""
    from hypothesis import given, settings, strategies as st

    payload, index = base_file()
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.text(max_size=6),
                        st.floats(allow_nan=False, allow_infinity=False),
                        st.sampled_from(["float32", "int8", "lossless", "int8-sparse", "block", "\ud800", "O"]))
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8)
    keys = ["name", "shape", "dtype", "codec", "params", "parts", "params.bits", "params.group",
            "params.granularity", "params.scale_shape", "params.nnz", "params.huffman", "params.error"]
    findings = []

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None)
    @given(st.integers(0, len(index["records"]) - 1), st.sampled_from(keys), values)
    def forge(i, key, value):
        forged = _copy(index)
        target = forged["records"][i]
        *head, last = key.split(".")
        for k in head:
            target = target[k]
        target[last] = value
        finding = outcome(check_tpz, tpz(payload, forged))
        if finding:
            findings.append((f"hypothesis: record {i} {key} = {value!r:.60}", finding))

    forge()
    return examples, findings


def run_all(seed=0, hypothesis_examples=300):
    start = time.perf_counter()
    count, findings = 0, []
    for label, check, blob in cases(seed):
        count += 1
        finding = outcome(check, blob)
        if finding:
            findings.append((label, finding))
    examples, more = hypothesis_run(hypothesis_examples, seed) if hypothesis_examples else (0, [])
    return {"backend": tp.backend, "files": count, "hypothesis_examples": examples,
            "findings": findings + more, "seconds": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hypothesis-examples", type=int, default=300)
    args = parser.parse_args()
    json.dump(run_all(args.seed, args.hypothesis_examples), sys.stdout, indent=1)
    print()
