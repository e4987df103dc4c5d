"""Huffman coder: round trips, the format against a bit-by-bit reference decoder, C / Numba /
instruction-set variants writing identical bytes, code-length rules, and damaged streams that
must always raise CorruptDataError. Runs on the live backend (TENSORPRESS_BACKEND)."""

import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tensorpress as tp
from tensorpress import _backend
from reference import huffman as ref
from conftest import isa_variants, requires_c

BLOCK = 1 << 18


def gaussian_int8(n, sigma=32.0, seed=0):
    x = np.random.default_rng(seed).standard_normal(n) * sigma
    return np.clip(np.round(x), -128, 127).astype(np.int8)


def skewed(n, seed=1):
    return np.minimum(np.random.default_rng(seed).geometric(0.3, n) - 1, 255).astype(np.uint8)


CASES = {
    "empty": np.zeros(0, np.uint8),
    "empty_2d": np.zeros((3, 0), np.int8),
    "one": np.array([7], np.uint8),
    "scalar_0d": np.array(-5, np.int8),
    "one_symbol_run": np.full(5000, 200, np.uint8),
    "two_symbols": np.random.default_rng(3).integers(0, 2, 3001).astype(np.uint8),
    "all_256": np.arange(256, dtype=np.uint8),
    "all_256_repeated": np.tile(np.arange(256, dtype=np.uint8), 40),
    "skewed": skewed(20000),
    "uniform": np.random.default_rng(4).integers(0, 256, 20000).astype(np.uint8),
    "gaussian_int8": gaussian_int8(30000),
    "multi_dim": gaussian_int8(2 * 3 * 50 * 7).reshape(2, 3, 50, 7),
    "tail_5": skewed(5),
    "tail_21": skewed(21),
}


def roundtrip(x):
    blob = tp.huffman_encode(x)
    y = tp.huffman_decode(blob)
    assert isinstance(blob, bytes)
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(y, x)
    return blob


@pytest.mark.parametrize("name", sorted(CASES))
def test_roundtrip_and_reference_decoder(name):
    x = CASES[name]
    blob = roundtrip(x)
    dtype, shape, data = ref.decode(blob)
    assert dtype == (1 if x.dtype == np.int8 else 0)
    assert shape == x.shape
    assert data == x.tobytes()


@pytest.mark.parametrize("n", [BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 3])
def test_sizes_around_block_boundaries(n):
    x = gaussian_int8(n, seed=n)
    x[-1] = 127  # a rare symbol in the last, short block
    blob = roundtrip(x)
    n_blocks = -(-n // BLOCK)
    assert len(blob) < n  # every Huffman block shrinks
    (count,) = struct.unpack_from("<Q", blob, 8)
    assert count == n and blob[7] == 18
    sizes = struct.unpack_from(f"<{n_blocks}I", blob, 24)
    assert sum(sizes) + 24 + 4 * n_blocks + 4 == len(blob)


def test_block_kinds_raw_rle_huffman():
    x = np.concatenate([np.full(BLOCK, 9, np.uint8),
                        np.random.default_rng(5).integers(0, 256, BLOCK).astype(np.uint8),
                        skewed(BLOCK)])
    blob = roundtrip(x)
    hsize = 16 + 8 + 4 * 3 + 4
    sizes = struct.unpack_from("<3I", blob, 24)
    offsets = [hsize, hsize + sizes[0], hsize + sizes[0] + sizes[1]]
    assert [blob[o] for o in offsets] == [1, 0, 2]
    assert sizes[0] == 6 and sizes[1] == 5 + BLOCK


def blocks_of(blob):
    """[(type, stored checksum, block bytes)] of a one-dimensional stream."""
    (count,) = struct.unpack_from("<Q", blob, 8)
    n_blocks = -(-count // BLOCK)
    sizes = struct.unpack_from(f"<{n_blocks}I", blob, 24)
    off, out = 24 + 4 * n_blocks + 4, []
    for size in sizes:
        out.append((blob[off], struct.unpack_from("<I", blob, off + 1)[0], blob[off:off + size]))
        off += size
    return out


@pytest.mark.parametrize("n", [1, 15, 16, 17, 31, 32, 33, 63, 64, 100, 127, 128, 129, 255, 1000,
                               4097, BLOCK + 77])
def test_checksums_are_zlib_crc32(n):
    """Header and block checksums are zlib.crc32 whatever the length (the PCLMULQDQ CRC has
    paths for < 32, < 128 and longer inputs, and for the bytes past the last 16-byte chunk);
    Huffman, raw and single-symbol blocks alike."""
    for x in (gaussian_int8(n, seed=n).view(np.uint8),
              np.random.default_rng(n).integers(0, 256, n).astype(np.uint8),
              np.full(n, 3, np.uint8)):
        blob = roundtrip(x)
        hsize = 24 + 4 * -(-n // BLOCK) + 4
        assert struct.unpack_from("<I", blob, hsize - 4)[0] == zlib.crc32(blob[:hsize - 4])
        for b, (_, check, _) in enumerate(blocks_of(blob)):
            assert check == zlib.crc32(x[b * BLOCK:(b + 1) * BLOCK].tobytes())


def test_docs_worked_example():
    """docs/huffman.md's first worked example is the stream huffman_encode writes."""
    import pathlib
    import re

    doc = (pathlib.Path(__file__).parent.parent / "docs" / "huffman.md").read_text()
    hexdump = re.search(r"gives 41 bytes:\n\n```\n(.*?)```", doc, re.S).group(1)
    assert tp.huffman_encode(np.array([1, 1, 2, 3], np.uint8)) == bytes.fromhex(hexdump)


def test_incompressible_growth_is_tiny():
    x = np.random.default_rng(6).integers(0, 256, 4 * BLOCK).astype(np.uint8)
    blob = tp.huffman_encode(x)
    assert len(blob) - x.size == 20 + 8 + 4 * 9  # header + 9 bytes per block
    assert (len(blob) - x.size) / x.size < 1e-3


def test_gaussian_close_to_entropy():
    x = gaussian_int8(3 << 19)
    blob = tp.huffman_encode(x)
    h = tp.entropy_bits(x)
    assert 8 * len(blob) < 1.015 * h
    assert 8 * len(blob) > h


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_bytes_like_input(kind):
    raw = bytes(skewed(3000))
    blob = tp.huffman_encode(kind(raw))
    back = tp.huffman_decode(blob)
    assert isinstance(back, bytes) and back == raw
    assert tp.huffman_decode(bytearray(blob)) == raw
    assert tp.huffman_decode(np.frombuffer(blob, np.uint8)) == raw


def test_int8_and_uint8_same_payload_different_dtype():
    u = skewed(1000)
    a, b = tp.huffman_encode(u), tp.huffman_encode(u.view(np.int8))
    hsize = first_block(a)
    assert a[5] == 0 and b[5] == 1
    assert a[6:hsize - 4] == b[6:hsize - 4] and a[hsize:] == b[hsize:]  # only dtype (and the
    assert a[hsize - 4:hsize] != b[hsize - 4:hsize]                      # header checksum) differ
    assert tp.huffman_decode(b).dtype == np.int8


def test_out_argument():
    x = gaussian_int8(4000).reshape(40, 100)
    blob = tp.huffman_encode(x)
    out = np.empty_like(x)
    assert tp.huffman_decode(blob, out=out) is out
    np.testing.assert_array_equal(out, x)
    with pytest.raises(tp.InvalidArgumentError):
        tp.huffman_decode(blob, out=np.empty((100, 40), np.int8))
    with pytest.raises(tp.DTypeError):
        tp.huffman_decode(blob, out=np.empty((40, 100), np.uint8))
    with pytest.raises(tp.InvalidArgumentError):
        tp.huffman_decode(blob, out=np.empty((40, 200), np.int8)[:, ::2])
    ro = np.empty_like(x)
    ro.flags.writeable = False
    with pytest.raises(tp.InvalidArgumentError):
        tp.huffman_decode(blob, out=ro)


def test_bad_arguments():
    with pytest.raises(tp.DTypeError):
        tp.huffman_encode(np.zeros(4, np.float32))
    with pytest.raises(tp.DTypeError):
        tp.huffman_encode([1, 2, 3])
    with pytest.raises(tp.DTypeError):
        tp.huffman_encode("text")
    with pytest.raises(tp.InvalidArgumentError):
        tp.huffman_encode(np.zeros((4, 4), np.uint8)[:, ::2])
    with pytest.raises(tp.DTypeError):
        tp.huffman_decode("not bytes")
    with pytest.raises(tp.DTypeError):
        tp.huffman_decode(np.zeros(30, np.float32))


# ---- identical bytes everywhere ------------------------------------------------------------

BYTES_CASES = ["one", "one_symbol_run", "two_symbols", "all_256", "skewed", "uniform",
               "gaussian_int8", "multi_dim", "tail_21", "empty_2d"]


@requires_c
@pytest.mark.skipif("numba" not in _backend.available_backends(), reason="numba missing")
@pytest.mark.parametrize("name", BYTES_CASES)
def test_c_and_numba_write_identical_bytes(name):
    x = CASES[name]
    c, nb = _backend.kernels_of("c", "huffman"), _backend.kernels_of("numba", "huffman")
    flat = x.reshape(-1).view(np.uint8)
    code = 1 if x.dtype == np.int8 else 0
    for block_log2 in (10, 18):
        a = c.encode(flat, code, x.shape, block_log2)
        b = nb.encode(flat, code, x.shape, block_log2)
        assert a == b
        for kernels in (c, nb):
            out = np.empty(x.size, np.uint8)
            kernels.decode(np.frombuffer(a, np.uint8), out)
            np.testing.assert_array_equal(out, flat)


@pytest.mark.slow  # compiles Numba's parallel drivers (tens of seconds on 2 busy cores)
@requires_c
@pytest.mark.skipif("numba" not in _backend.available_backends(), reason="numba missing")
def test_c_and_numba_identical_on_large_parallel_input():
    x = gaussian_int8(17 * BLOCK + 77, seed=9)  # > 2**22: the parallel drivers
    flat = x.view(np.uint8)
    a = _backend.kernels_of("c", "huffman").encode(flat, 1, x.shape)
    b = _backend.kernels_of("numba", "huffman").encode(flat, 1, x.shape)
    assert a == b


# ---- every C variant against the scalar reference (csrc/huffman/ref.c) and the NumPy one --------

def _variant_inputs():
    odd = [gaussian_int8(n, seed=n).view(np.uint8) for n in (47, 130, 1024 + 63, 3 * 1024 + 250)]
    return [CASES[name].reshape(-1).view(np.uint8)
            for name in ("gaussian_int8", "skewed", "all_256_repeated", "tail_21", "uniform",
                         "one_symbol_run", "two_symbols", "empty")] + odd


@requires_c
@pytest.mark.parametrize("isa", isa_variants())
def test_isa_variants_encode_and_decode_as_the_reference(isa):
    c = _backend.kernels_of("c", "huffman")
    for x in _variant_inputs():
        want = c.encode(x, 0, x.shape, 10, isa="scalar")
        assert c.encode(x, 0, x.shape, 10, isa=isa) == want
        assert ref.decode(want) == (0, x.shape, x.tobytes())
        out = np.empty_like(x)
        c.decode(np.frombuffer(want, np.uint8), out, isa=isa)
        np.testing.assert_array_equal(out, x)


@requires_c
@pytest.mark.parametrize("isa", isa_variants())
def test_isa_variants_decode_block_pairs_as_the_reference(isa):
    """Blocks are decoded two at a time, both together when both are full single-symbol
    Huffman blocks: pairs of every kind of block beside a Huffman one (raw, one symbol,
    multi-symbol, Huffman), and a short last block."""
    c = _backend.kernels_of("c", "huffman")
    rng = np.random.default_rng(31)
    k = 1024
    huff = [gaussian_int8(k, seed=s).view(np.uint8) for s in range(40, 46)]
    kinds = {
        "huffman": huff[0],
        "raw": rng.integers(0, 256, k).astype(np.uint8),
        "one_symbol": np.full(k, 7, np.uint8),
        "multi": _low_entropy(k, seed=3, p=0.9),
        "two_bit_codes": np.tile(np.array([1, 2, 3, 4], np.uint8), k // 4),
    }
    inputs = [np.concatenate([huff[1], huff[2], huff[3], huff[4], huff[5][:100]])]
    for name, block in kinds.items():
        inputs.append(np.concatenate([huff[1], block, block, huff[2], huff[3]]))
    for x in inputs:
        want = c.encode(x, 0, x.shape, 10, isa="scalar")
        for which in ("scalar", isa):
            out = np.empty_like(x)
            c.decode(np.frombuffer(want, np.uint8), out, isa=which)
            np.testing.assert_array_equal(out, x)


@requires_c
@pytest.mark.parametrize("isa", isa_variants())
def test_isa_variants_refuse_damage_as_the_reference(isa):
    """Every variant gives the reference's verdict on damaged blocks (resealed headers, so the
    block decoders see the damage): CorruptDataError, or the same bytes."""
    c = _backend.kernels_of("c", "huffman")
    rng = np.random.default_rng(21)
    good = SEEDS["small_blocks"]
    start = first_block(good)
    for _ in range(300):
        blob = bytearray(good)
        pos = int(rng.integers(start, len(blob)))
        blob[pos] ^= 1 << int(rng.integers(0, 8))
        data = np.frombuffer(reseal(blob), np.uint8)
        verdicts = []
        for which in ("scalar", isa):
            out = np.zeros(5000, np.uint8)
            try:
                c.decode(data, out, isa=which)
                verdicts.append(out.tobytes())
            except tp.CorruptDataError:
                verdicts.append("corrupt")
        assert verdicts[0] == verdicts[1]


@requires_c
@pytest.mark.parametrize("isa", isa_variants())
def test_isa_variants_crc32_histogram_and_code_lengths_as_the_reference(isa):
    c = _backend.kernels_of("c", "huffman")
    # the (V)PCLMULQDQ forms' paths: < 32, < 128, < 256 bytes, 64- and 256-byte steps, tails
    for n in (0, 1, 15, 16, 31, 32, 33, 127, 128, 129, 255, 256, 257, 319, 320, 511, 512, 527,
              1000, 70001):
        x = np.random.default_rng(n).integers(0, 256, n).astype(np.uint8)
        assert c.crc32(x, isa=isa) == c.crc32(x, isa="scalar") == zlib.crc32(x.tobytes())
        assert c.crc32(x, 12345, isa=isa) == zlib.crc32(x.tobytes(), 12345)
        assert c.crc32(x[1:], isa=isa) == zlib.crc32(x[1:].tobytes())  # unaligned
        want = np.bincount(x, minlength=256)
        np.testing.assert_array_equal(c.histogram(x, isa=isa), want)
        np.testing.assert_array_equal(c.histogram(x, isa="scalar"), want)
    rng = np.random.default_rng(8)
    for trial in range(200):
        n = int(rng.integers(0, 257))
        counts = (rng.geometric(rng.uniform(0.01, 0.5), n) - 1) * (rng.random(n) < 0.7)
        if trial % 3 == 0:
            counts = rng.integers(0, 10**6, n)
        counts = counts.astype(np.int64)
        for max_bits in (8, 11, 15):
            if np.count_nonzero(counts) > 1 << max_bits:
                continue
            want = c.code_lengths(counts, max_bits, isa="scalar")
            np.testing.assert_array_equal(c.code_lengths(counts, max_bits, isa=isa), want)
            assert list(want) == ref.limited_lengths(counts, max_bits)


@requires_c
def test_thread_count_does_not_change_output():
    x = gaussian_int8(9 * BLOCK + 5, seed=11)
    before = tp.get_num_threads()
    try:
        tp.set_num_threads(1)
        one = tp.huffman_encode(x)
        tp.set_num_threads(2)
        two = tp.huffman_encode(x)
        np.testing.assert_array_equal(tp.huffman_decode(one), x)
    finally:
        tp.set_num_threads(before)
    assert one == two


# ---- code lengths ---------------------------------------------------------------------------

def kraft(lengths, max_bits):
    return sum(1 << (max_bits - int(l)) for l in lengths if l)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=0, max_size=256), st.integers(8, 15))
def test_code_lengths_properties(counts, max_bits):
    used = sum(1 for c in counts if c)
    lengths = tp.huffman_code_lengths(np.array(counts, np.int64), max_bits=max_bits)
    assert lengths.dtype == np.uint8 and lengths.shape == (len(counts),)
    assert [bool(l) for l in lengths] == [bool(c) for c in counts]
    assert lengths.max(initial=0) <= max(max_bits, 1)
    assert list(lengths) == ref.limited_lengths(counts, max_bits)
    if used >= 2:
        assert kraft(lengths, max_bits) == 1 << max_bits
        cost = sum(int(c) * int(l) for c, l in zip(counts, lengths))
        optimal = sum(int(c) * l for c, l in zip(counts, ref.huffman_lengths(counts)))
        assert cost >= optimal
        if max(ref.huffman_lengths(counts)) <= max_bits:
            assert cost == optimal


def test_code_lengths_limit_and_quality_on_gaussian():
    x = gaussian_int8(1 << 18, seed=3).view(np.uint8)
    counts = np.bincount(x, minlength=256)
    lengths = tp.huffman_code_lengths(counts)
    assert lengths.max() == 11 and max(ref.huffman_lengths(counts)) > 11
    assert kraft(lengths, 11) == 1 << 11
    cost = int((counts * lengths).sum())
    best = sum(int(c) * l for c, l in zip(counts, ref.package_merge(counts, 11)))
    assert cost <= best * 1.0005  # within 0.05% of the optimum


def test_code_lengths_edge_cases():
    assert list(tp.huffman_code_lengths([])) == []
    assert list(tp.huffman_code_lengths([0, 0, 5])) == [0, 0, 1]
    assert list(tp.huffman_code_lengths([3, 3])) == [1, 1]
    assert list(tp.huffman_code_lengths([1] * 4, max_bits=2)) == [2, 2, 2, 2]
    with pytest.raises(tp.InvalidArgumentError):
        tp.huffman_code_lengths([1] * 5, max_bits=2)
    with pytest.raises(tp.InvalidArgumentError):
        tp.huffman_code_lengths([1, -1])
    with pytest.raises(tp.InvalidArgumentError):
        tp.huffman_code_lengths([1] * 257)
    with pytest.raises(tp.DTypeError):
        tp.huffman_code_lengths([1.5, 2.0])
    with pytest.raises(tp.InvalidArgumentError):
        tp.huffman_code_lengths([1, 2], max_bits=0)
    with pytest.raises(tp.InvalidArgumentError):
        tp.huffman_code_lengths([2**52, 2**52])


def test_entropy_bits():
    for name in ("skewed", "uniform", "one_symbol_run", "gaussian_int8", "empty"):
        x = CASES[name]
        assert tp.entropy_bits(x) == pytest.approx(ref.entropy_bits(x.view(np.uint8)), rel=1e-12, abs=1e-9)
    assert tp.entropy_bits(b"abab") == pytest.approx(4.0)


# ---- damaged streams ------------------------------------------------------------------------

SEEDS = {name: tp.huffman_encode(CASES[name]) for name in
         ("gaussian_int8", "skewed", "two_symbols", "one_symbol_run", "uniform", "empty_2d",
          "tail_21")}
SEEDS["small_blocks"] = _backend.kernels("huffman").encode(
    skewed(5000).reshape(-1), 0, (5000,), 10)


def assert_corrupt(blob):
    with pytest.raises(tp.CorruptDataError):
        tp.huffman_decode(blob)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SEEDS)), st.data())
def test_any_mutation_raises(seed_name, data):
    blob = bytearray(SEEDS[seed_name])
    kind = data.draw(st.sampled_from(["flip", "byte", "truncate", "append", "insert", "delete"]))
    if kind == "flip":
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "byte":
        pos = data.draw(st.integers(0, len(blob) - 1))
        value = data.draw(st.integers(0, 255).filter(lambda v: v != blob[pos]))
        blob[pos] = value
    elif kind == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif kind == "append":
        blob += bytes(data.draw(st.lists(st.integers(0, 255), min_size=1, max_size=9)))
    elif kind == "insert":
        pos = data.draw(st.integers(0, len(blob)))
        blob[pos:pos] = bytes([data.draw(st.integers(0, 255))])
    else:
        pos = data.draw(st.integers(0, len(blob) - 1))
        del blob[pos]
    assert_corrupt(bytes(blob))


def reseal(blob, ndim=1):
    """Recompute the header checksum so a damaged block reaches the block decoder."""
    blob = bytearray(blob)
    count = struct.unpack_from("<Q", blob, 8)[0]
    n_blocks = -(-count // (1 << blob[7]))
    hsize = 16 + 8 * ndim + 4 * n_blocks + 4
    struct.pack_into("<I", blob, hsize - 4, ref.crc32(bytes(blob[:hsize - 4])))
    return bytes(blob)


def first_block(blob, ndim=1):
    count = struct.unpack_from("<Q", blob, 8)[0]
    n_blocks = -(-count // (1 << blob[7]))
    return 16 + 8 * ndim + 4 * n_blocks + 4


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_damaged_block_behind_a_valid_header_raises(data):
    blob = bytearray(SEEDS["gaussian_int8"])
    start = first_block(blob)
    assert blob[start] == 2
    # anywhere in the block: the type, checksum, code lengths, jump table or streams
    pos = data.draw(st.integers(start, len(blob) - 1))
    blob[pos] ^= 1 << data.draw(st.integers(0, 7))
    assert_corrupt(reseal(blob))


def test_crafted_headers_raise():
    good = SEEDS["gaussian_int8"]
    start = first_block(good)
    cases = []
    b = bytearray(good); b[:4] = b"XXXX"; cases.append(bytes(b))
    b = bytearray(good); b[4] = 1; cases.append(reseal(b))                 # version
    b = bytearray(good); b[5] = 3; cases.append(reseal(b))                 # dtype
    b = bytearray(good); b[6] = 33; cases.append(bytes(b))                 # ndim
    b = bytearray(good); b[7] = 9; cases.append(reseal(b))                 # block size
    b = bytearray(good); struct.pack_into("<Q", b, 8, 1 << 60); cases.append(bytes(b))
    b = bytearray(good); struct.pack_into("<Q", b, 16, 29999); cases.append(reseal(b))  # shape
    # jump table pointing past the block, resealed header
    b = bytearray(good); struct.pack_into("<I", b, start + 133, 1 << 30); cases.append(reseal(b))
    b = bytearray(good); struct.pack_into("<I", b, start + 133, 0); cases.append(reseal(b))
    # code lengths above 11 / not a complete code
    b = bytearray(good); b[start + 5] = 0xFF; cases.append(reseal(b))
    b = bytearray(good); b[start + 5:start + 133] = bytes(128); cases.append(reseal(b))
    # unknown block type; block size table disagreeing with the data
    b = bytearray(good); b[start] = 7; cases.append(reseal(b))
    b = bytearray(good); struct.pack_into("<I", b, 24, struct.unpack_from("<I", b, 24)[0] - 1)
    cases.append(reseal(b[:-1]))
    cases += [b"", b"TPHF", good[:20], good + b"\0"]
    for blob in cases:
        assert_corrupt(blob)


def test_a_shape_whose_product_wraps_around_is_corrupt():
    # 2**40 * 2**30 wraps to 0 in 64 bits: a header claiming that shape with count 0 must not
    # pass as an empty array (it once raised a plain "array is too big" ValueError from NumPy).
    header = bytearray(b"TPHF" + bytes([2, 0, 2, 18]) + struct.pack("<QQQ", 0, 2**40, 2**30) + bytes(4))
    blob = reseal(bytes(header), ndim=2)
    assert_corrupt(blob)


def test_other_format_version_is_named():
    """A well-formed stream of another format version (version 1 used XXH32 checksums) says
    which version it is, rather than just 'bad header'."""
    blob = bytearray(tp.huffman_encode(np.arange(1000).astype(np.uint8)))
    for version in (1, 3, 255):
        blob[4] = version
        with pytest.raises(tp.CorruptDataError, match=f"unsupported stream version {version}"):
            tp.huffman_decode(bytes(blob))


# ---- forged streams: refused before allocating (tests/fuzz/forged_tpz.py builds them) ----------

def _forge():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent / "fuzz"))
    try:
        import forged_tpz
    finally:
        sys.path.pop(0)
    return forged_tpz


def test_counts_a_stream_cannot_hold_are_refused_before_allocating():
    f = _forge()
    # 5 KB of single-symbol blocks claiming 2**33 symbols, checksums wrong: found from the table
    with pytest.raises(tp.CorruptDataError, match="single-symbol block fails its checksum"):
        tp.huffman_decode(f.rle_bomb(1 << 33, 24, good_crc=False))
    with pytest.raises(tp.CorruptDataError, match="type 2, cannot hold its 16777216 symbols"):
        tp.huffman_decode(f.huffman_stream(1 << 24, [f.huff_block_claiming()], block_log2=24))
    with pytest.raises(tp.CorruptDataError, match="type 0, cannot hold"):
        tp.huffman_decode(f.huffman_stream(1 << 20, [f.raw_block(bytes(10))] * 4))
    with pytest.raises(tp.CorruptDataError, match="type 7"):
        tp.huffman_decode(f.huffman_stream(80, [bytes((7,)) + bytes(84)]))


def test_single_symbol_blocks_of_many_values_decode():
    """Streams of single-symbol blocks, with fewer and more than nine distinct values (the two
    ways their checksums are checked before decoding), and a short last block."""
    for values in (3, 40):
        x = np.repeat(np.arange(values, dtype=np.uint8) * 5, 1024)[:-100]
        blob = _backend.kernels("huffman").encode(x, 0, x.shape, 10)
        assert blob[16 + 8 + 4 * (-(-x.size // 1024)) + 4] == 1  # single-symbol blocks
        np.testing.assert_array_equal(tp.huffman_decode(blob), x)
        forged = bytearray(blob)
        forged[-5] ^= 1  # the last block's checksum
        with pytest.raises(tp.CorruptDataError, match="single-symbol"):
            tp.huffman_decode(bytes(forged))


def test_max_count():
    blob = tp.huffman_encode(np.arange(100, dtype=np.uint8))
    assert tp.huffman_decode(blob, max_count=100).size == 100
    with pytest.raises(tp.CorruptDataError, match="declares 100 symbols, more than the 99 expected"):
        tp.huffman_decode(blob, max_count=99)
    with pytest.raises(tp.InvalidArgumentError):
        tp.huffman_decode(blob, max_count=-1)
    with pytest.raises(tp.DTypeError):
        tp.huffman_decode(blob, max_count=99.5)


def test_out_is_untouched_when_the_block_table_is_refused():
    x = skewed(3000)
    blob = bytearray(tp.huffman_encode(x))
    blob[16 + 8 + 4 + 4] = 7  # the first block's type byte (not under the header checksum)
    out = np.full(x.shape, 77, np.uint8)
    with pytest.raises(tp.CorruptDataError):
        tp.huffman_decode(bytes(blob), out=out)
    assert (out == 77).all()


def test_ndarray_subclasses_are_viewed_and_masked_arrays_refused():
    x = np.arange(24, dtype=np.uint8).reshape(4, 6)
    assert tp.huffman_encode(np.matrix(x)) == tp.huffman_encode(x)
    out = np.matrix(np.zeros((4, 6), np.uint8))
    tp.huffman_decode(tp.huffman_encode(x), out=out)
    np.testing.assert_array_equal(np.asarray(out), x)
    with pytest.raises(tp.DTypeError, match="masked"):
        tp.huffman_encode(np.ma.masked_array(x, mask=x > 3))


# ---- the multi-symbol decoder (csrc/huffman/loops.h): blocks of < 4 payload bits per symbol -----

def _low_entropy(n, seed, p=0.6):
    """Geometric symbols: ~1.5-3 bits each, so the multi-symbol path decodes the block."""
    rng = np.random.default_rng(seed)
    return np.minimum(rng.geometric(p, n) - 1, 255).astype(np.uint8)


def _multi_inputs():
    rng = np.random.default_rng(77)
    xs = []
    # tiny blocks and every stream length mod 4 (a Huffman block of 1-bit codes needs len > 160)
    for n in (165, 166, 167, 168, 200, 333, 1023, 1024, 1025, 1026, 1027):
        xs.append(_low_entropy(n, seed=n, p=0.95))
    # runs of the shortest code (3 symbols a lookup) and streams that end on one-symbol lookups
    two = (rng.random(5000) < 0.97).astype(np.uint8)
    xs.append(two)
    tail = _low_entropy(4000, seed=5)
    tail[-40:] = rng.integers(0, 256, 40)  # long codes at the very end of every stream
    xs.append(tail)
    # only a few table entries are pairs: a near-flat code of many symbols, skewed just enough
    few = np.where(rng.random(6000) < 0.75, 0, rng.integers(1, 200, 6000)).astype(np.uint8)
    xs.append(few)
    # streams of unequal speed: stream 0 all cheap symbols, the others expensive
    uneven = _low_entropy(8000, seed=9, p=0.8)
    uneven[1::4] = rng.integers(0, 8, len(uneven[1::4]))
    xs.append(uneven)
    xs.append(_low_entropy(3 * 1024 + 17, seed=11, p=0.3))
    # blocks of many runs' worth (2048 symbols a stream a run): batches, leftovers moved to the
    # runs' starts, streams of unequal speed across batches
    xs.append(_low_entropy(40000 + 3, seed=13, p=0.7))
    long_uneven = _low_entropy(60000, seed=15, p=0.9)
    long_uneven[2::4] = rng.integers(0, 16, len(long_uneven[2::4]))
    xs.append(long_uneven)
    return xs


@requires_c
@pytest.mark.parametrize("isa", isa_variants())
def test_multi_symbol_path_decodes_as_the_reference(isa):
    c = _backend.kernels_of("c", "huffman")
    for x in _multi_inputs():
        for log2 in (10, 12, 18):
            want = c.encode(x, 0, x.shape, log2, isa="scalar")
            out = np.empty_like(x)
            c.decode(np.frombuffer(want, np.uint8), out, isa=isa)
            np.testing.assert_array_equal(out, x)
    # the inputs do reach the multi-symbol path: Huffman blocks of < 4 payload bits per symbol
    for x in _multi_inputs()[:4]:
        blob = c.encode(x, 0, x.shape, 18, isa="scalar")
        assert blob[first_block(blob)] == 2
        assert 8 * (len(blob) - first_block(blob) - 145) < 4 * len(x)


@requires_c
@pytest.mark.parametrize("isa", isa_variants())
def test_multi_symbol_path_refuses_damage_as_the_reference(isa):
    """Every bit of small low-entropy blocks flipped, and every truncation of the payload: the
    variant gives the scalar reference's verdict (corrupt, or the same bytes)."""
    c = _backend.kernels_of("c", "huffman")
    for n in (170, 1027):
        x = _low_entropy(n, seed=n + 1, p=0.9)
        good = c.encode(x, 0, x.shape, 18, isa="scalar")
        start = first_block(good)
        assert good[start] == 2
        damaged = []
        for pos in range(start, len(good)):
            for bit in range(8):
                blob = bytearray(good)
                blob[pos] ^= 1 << bit
                damaged.append(reseal(blob))
        for verdict_blob in damaged:
            verdicts = []
            for which in ("scalar", isa):
                out = np.zeros(n, np.uint8)
                try:
                    c.decode(np.frombuffer(verdict_blob, np.uint8), out, isa=which)
                    verdicts.append(out.tobytes())
                except tp.CorruptDataError:
                    verdicts.append("corrupt")
            assert verdicts[0] == verdicts[1]
    # truncated or shifted streams: the stream sizes say more or fewer bytes than the codes take
    x = _low_entropy(5000, seed=3)
    good = bytearray(c.encode(x, 0, x.shape, 18, isa="scalar"))
    start = first_block(good)
    for k in range(3):
        for delta in (-1, 1):
            blob = bytearray(good)
            at = start + 133 + 4 * k
            struct.pack_into("<I", blob, at, struct.unpack_from("<I", blob, at)[0] + delta)
            with pytest.raises(tp.CorruptDataError):
                c.decode(np.frombuffer(reseal(blob), np.uint8), np.zeros(5000, np.uint8), isa=isa)
