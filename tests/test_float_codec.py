"""The lossless float codec: every bit pattern round-trips on every dtype, the stream as
docs/float_codec.md specifies it (checked by a plain reference decoder), C / Numba / ISA
variants / thread counts writing identical bytes, the encoder's raw-or-coded rule, compression
close to the planes' order-0 bound, and damaged or forged streams that always raise
CorruptDataError before anything is allocated. Runs on the live backend (TENSORPRESS_BACKEND)."""

import struct
import zlib

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import tensorpress as tp
from tensorpress import _backend
from reference import floatcodec as ref
from reference.huffman import crc32
from conftest import isa_variants, requires_c

BF16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), BF16]
CODES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.float16): 2, BF16: 3}
UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}
# what float_encode writes (spec section 6)
CHUNK = {"float16": 1 << 17, "bfloat16": 1 << 16, "float32": 1 << 16, "float64": 1 << 15}


def ids(dtypes):
    return [d.name for d in dtypes]


def weights(n, dtype, seed=0, scale=0.02):
    """Trained-weight-like values: Gaussian, a few hundredths."""
    return (np.random.default_rng(seed).standard_normal(n) * scale).astype(dtype)


def random_bits(n, dtype, seed=0):
    return np.random.default_rng(seed).integers(0, 256, n * dtype.itemsize, dtype=np.uint8).view(dtype)


def special_values(dtype):
    """Every class of bit pattern: zeros of both signs, subnormals, the extremes, infinities,
    quiet and signalling NaNs with payloads, of both signs."""
    w = dtype.itemsize
    u = UINT[w]
    bits = 8 * w
    exp_bits = {2: 8 if dtype == BF16 else 5, 4: 8, 8: 11}[w]
    man = bits - 1 - exp_bits
    top = 1 << (bits - 1)
    exp_all = ((1 << exp_bits) - 1) << man
    patterns = [0, 1, 2, (1 << man) - 1, 1 << man, exp_all - 1, exp_all, exp_all | 1,
                exp_all | (1 << (man - 1)), exp_all | ((1 << man) - 1), 0x55 & ((1 << man) - 1)]
    patterns += [p | top for p in patterns]
    return np.array(patterns, u).view(dtype)


def cases(dtype):
    c = CHUNK[dtype.name]
    return {
        "empty": np.zeros(0, dtype),
        "empty_2d": np.zeros((3, 0), dtype),
        "scalar_0d": np.array(1.5, dtype),
        "one": np.array([-0.0], dtype),
        "specials": special_values(dtype),
        "specials_tiled": np.tile(special_values(dtype), 301).reshape(-1, 2),
        "constant": np.full(3000, 0.25, dtype),
        "zeros_chunk_plus_one": np.zeros(c + 1, dtype),
        "weights_3d": weights(2 * 3 * 1000, dtype).reshape(2, 3, 1000),
        "weights_chunk_minus_one": weights(c - 1, dtype, 1),
        "weights_two_chunks_and_a_bit": weights(2 * c + 7, dtype, 2),
        "random_bits": random_bits(5001, dtype),
    }


CASE_NAMES = sorted(cases(BF16))


def assert_same_bits(y, x):
    assert y.dtype == x.dtype and y.shape == x.shape
    assert y.tobytes() == x.tobytes()


@pytest.mark.parametrize("dtype", DTYPES, ids=ids(DTYPES))
@pytest.mark.parametrize("name", CASE_NAMES)
def test_every_bit_pattern_round_trips(dtype, name):
    x = cases(dtype)[name]
    blob = tp.float_encode(x)
    assert isinstance(blob, bytes)
    assert_same_bits(tp.float_decode(blob), x)
    out = np.empty_like(x)
    assert tp.float_decode(blob, out=out) is out
    assert_same_bits(out, x)


# ---- the stream, as the spec describes it ---------------------------------------------------------

def small_chunks(x, chunk_log2=10):
    """The stream with 1024-element chunks (the reference decoder is slow on big blocks)."""
    return bytes(_backend.kernels("floatcodec").encode(x.reshape(-1).view(UINT[x.dtype.itemsize]),
                                                       CODES[x.dtype], x.shape, chunk_log2))


@pytest.mark.parametrize("dtype", DTYPES, ids=ids(DTYPES))
def test_reference_decoder_reads_the_stream(dtype):
    for x in (np.concatenate([weights(2500, dtype), special_values(dtype)]).reshape(-1, 1),
              np.full((5, 7), -3.0, dtype), np.zeros((0,), dtype), np.array(7.0, dtype)):
        code, shape, bits = ref.decode(small_chunks(x))
        assert (code, shape) == (CODES[dtype], x.shape)
        assert bits.tobytes() == x.tobytes()
        assert ref.decode(tp.float_encode(x))[2].tobytes() == x.tobytes()


def test_docs_worked_example():
    """docs/float_codec.md section 4: float16 [1.0, -2.0, 0.0] has planes 00 01 00 and 78 80 00."""
    x = np.array([1.0, -2.0, 0.0], np.float16)
    np.testing.assert_array_equal(ref.planes(x.view(np.uint16)), [[0x00, 0x01, 0x00], [0x78, 0x80, 0x00]])
    blob = tp.float_encode(x)
    assert blob[:8] == b"TPFC\x01\x02\x01\x11"  # version 1, float16, ndim 1, chunk_log2 17
    hsize = 16 + 8 + 4 * 2 + 4
    assert blob[hsize:hsize + 1] == b"\x00" and blob[hsize + 5:hsize + 8] == bytes([0, 1, 0])
    assert blob[hsize + 8:hsize + 9] == b"\x00" and blob[hsize + 13:] == bytes([0x78, 0x80, 0x00])
    assert struct.unpack_from("<I", blob, hsize - 4)[0] == crc32(blob[:hsize - 4])


def block_types(blob, itemsize, ndim=1):
    """The type byte of every block, as a (chunks, planes) array."""
    count, chunk_log2 = struct.unpack_from("<Q", blob, 8)[0], blob[7]
    n_blocks = -(-count // (1 << chunk_log2)) * itemsize
    table = 16 + 8 * ndim
    sizes = struct.unpack_from(f"<{n_blocks}I", blob, table)
    offsets = table + 4 * n_blocks + 4 + np.cumsum((0,) + sizes[:-1])
    return np.array([blob[o] for o in offsets]).reshape(-1, itemsize)


@pytest.mark.parametrize("dtype", DTYPES, ids=ids(DTYPES))
def test_exponent_plane_is_coded_and_random_mantissa_bytes_stored_raw(dtype):
    x = weights(3 * CHUNK[dtype.name], dtype)
    blob = tp.float_encode(x)
    assert 1 << blob[7] == CHUNK[dtype.name]  # chunk_log2
    types = block_types(blob, dtype.itemsize)
    assert (types[:, -1] == 3).all()  # the exponent's plane: Huffman, with a range table
    if dtype.itemsize >= 4:
        assert (types[:, 0] == 0).all()  # the lowest mantissa byte: raw
    assert (block_types(tp.float_encode(np.zeros(5000, dtype)), dtype.itemsize) == 1).all()


def coded_block(plane):
    """(type, size) of the Huffman block the spec's section 6 gives a plane, before the 1/64
    rule: type 2 (`huffman_encode`'s block: 145 bytes, then each of the four streams' code bits
    in whole bytes) or type 3, 128 bytes shorter but for its range table, when smaller."""
    lengths = tp.huffman_code_lengths(np.bincount(plane, minlength=256)).astype(np.int64)
    h2 = 145 + sum(-(-int(lengths[plane[k::4]].sum()) // 8) for k in range(4))
    used = np.flatnonzero(lengths)
    h3 = h2 - 128 + 2 + (int(used[-1] - used[0]) + 2) // 2
    return (3, h3) if h3 < h2 else (2, h2)


@pytest.mark.parametrize("spread", [256, 40])
def test_a_plane_is_coded_only_when_that_saves_a_64th(spread):
    """Spec section 6: a Huffman block saving less than 1/64 of its plane is written raw. Low
    bytes of float16 values, a fraction of them drawn from 16 values and the rest uniformly from
    `spread` values, give planes on both sides of the boundary, and between: smaller coded, but
    not by 1/64; with the narrow spread the range table is the smaller one."""
    rng = np.random.default_rng(5)
    seen = set()
    for a in np.linspace(0.35, 0.6, 26) if spread == 256 else np.linspace(0.0, 1.0, 11):
        p = np.zeros(256)
        p[:spread] = (1 - a) / spread
        p[:16] += a / 16
        low = rng.choice(256, 1024, p=p / p.sum()).astype(np.uint8)
        r = low.astype(np.uint16) | np.uint16(0x3C << 8)  # rotated bits: exponent byte fixed
        x = ((r >> 1) | (r << 15)).astype(np.uint16).view(np.float16)
        blob = small_chunks(x)
        assert ref.decode(blob)[2].tobytes() == x.tobytes()
        kind, size = coded_block(low)
        saved = 5 + 1024 - size
        coded = saved * 64 >= 1024
        assert block_types(blob, 2)[0, 0] == (kind if coded else 0), a
        seen.add(f"coded as type {kind}" if coded else "smaller, yet raw" if saved > 0 else "raw")
    assert seen == ({"coded as type 2", "smaller, yet raw", "raw"} if spread == 256 else {"coded as type 3"})


def sample_looks_random(plane):
    """Spec section 6: a plane of at least 16384 bytes whose every 8th byte (n of them, counts
    c) has sum c (c - 1) * 239 <= n (n - 1) is raw, without being counted in full."""
    if plane.size < 16384:
        return False
    c = np.bincount(plane[::8], minlength=256).astype(np.int64)
    n = int(c.sum())
    return int((c * np.maximum(c - 1, 0)).sum()) * 239 <= n * (n - 1)


@pytest.mark.parametrize("backend", _backend.available_backends())
def test_a_plane_whose_sample_looks_random_is_raw(backend):
    """Spec section 6: the sample alone decides. Low bytes of float16 values, one value but at
    every 8th position, where they come from a distribution that sweeps across the threshold:
    counted in full, every such plane would be coded (7/8 of it is one byte value), but those
    whose sample looks random are raw. Planes under 16384 bytes (chunks of 8192 elements) are
    counted in full and coded whatever their sample."""
    kernels = _backend.kernels_of(backend, "floatcodec")
    rng = np.random.default_rng(8)
    seen = set()
    for a in np.linspace(0.0, 0.12, 13):
        p = np.full(256, (1 - a) / 256)
        p[:16] += a / 16
        low = np.full(1 << 14, 0x55, np.uint8)
        low[::8] = rng.choice(256, low[::8].size, p=p)
        r = low.astype(np.uint16) | np.uint16(0x3C << 8)  # rotated bits: exponent byte fixed
        bits = ((r >> 1) | (r << 15)).astype(np.uint16)
        for chunk_log2 in (14, 13):
            blob = bytes(kernels.encode(bits, CODES[np.dtype(np.float16)], bits.shape, chunk_log2))
            assert np.frombuffer(tp.float_decode(blob), np.uint16).tobytes() == bits.tobytes()
            types = block_types(blob, 2)
            assert (types[:, 1] == 1).all()  # the exponent byte: one value
            planes = low.reshape(-1, 1 << chunk_log2)
            raw = [sample_looks_random(plane) for plane in planes]
            assert list(types[:, 0] == 0) == raw, (a, chunk_log2)
            assert set(types[:, 0]) <= {0, 2}  # coded: a Huffman block (all 256 values used)
            seen.update(raw)
            if chunk_log2 == 13:
                assert raw == [False, False]
    assert seen == {False, True}


def test_range_table_blocks_belong_to_the_float_codec_only():
    """A type-3 block decodes inside a float codec stream; the same block in a Huffman stream
    (whose format has no type 3) is corrupt."""
    x = weights(5000, BF16)
    blob = small_chunks(x)
    start = first_block(blob)
    sizes = struct.unpack_from("<10I", blob, 16 + 8)
    exponent_block = blob[start + sizes[0]:start + sizes[0] + sizes[1]]
    assert exponent_block[0] == 3
    plane = ref.planes(x.view(np.uint16))[1, :1024]
    assert ref.decode_block(exponent_block, 1024, allow_range=True) == plane.tobytes()
    with pytest.raises(ref.Corrupt):
        ref.decode_block(exponent_block, 1024)
    head = b"TPHF" + bytes([2, 0, 1, 10]) + struct.pack("<QQI", 1024, 1024, len(exponent_block))
    stream = head + struct.pack("<I", zlib.crc32(head)) + exponent_block
    with pytest.raises(tp.CorruptDataError, match="type 3"):
        tp.huffman_decode(stream)
    with pytest.raises(tp.CorruptDataError):  # the kernel itself, past the Python-side checks
        _backend.kernels("huffman").decode(np.frombuffer(stream, np.uint8), np.empty(1024, np.uint8))


def test_compression_close_to_the_order_zero_bound_of_the_planes():
    """bfloat16 weights: the stream is within 1% of the planes' order-0 entropy per chunk (the
    mantissa plane counted at 8 bits, what storing it raw costs)."""
    x = weights(4 * CHUNK["bfloat16"], BF16)
    blob = tp.float_encode(x)
    planes = ref.planes(x.view(np.uint16))
    bound = 0.0
    for c in range(0, x.size, CHUNK["bfloat16"]):
        bound += tp.entropy_bits(planes[1, c:c + CHUNK["bfloat16"]]) / 8 + CHUNK["bfloat16"]
    assert len(blob) <= 1.01 * bound
    assert x.nbytes / len(blob) > 1.45


@pytest.mark.parametrize("dtype", DTYPES, ids=ids(DTYPES))
def test_incompressible_data_grows_by_at_most_0_2_percent(dtype):
    x = random_bits(3 * CHUNK[dtype.name] + 11, dtype, seed=9)
    assert len(tp.float_encode(x)) <= x.nbytes * 1.002


# ---- every implementation writes the same bytes -----------------------------------------------

@requires_c
@pytest.mark.parametrize("isa", isa_variants())
@pytest.mark.parametrize("dtype", DTYPES, ids=ids(DTYPES))
def test_isa_variants_encode_and_decode_as_the_scalar_reference(isa, dtype):
    c = _backend.kernels_of("c", "floatcodec")
    for name in ("specials_tiled", "weights_3d", "constant", "random_bits", "empty"):
        x = cases(dtype)[name]
        flat = x.reshape(-1).view(UINT[dtype.itemsize])
        for chunk_log2 in (10, 16):
            want = bytes(c.encode(flat, CODES[dtype], x.shape, chunk_log2, isa="scalar"))
            assert bytes(c.encode(flat, CODES[dtype], x.shape, chunk_log2, isa=isa)) == want
            out = np.zeros_like(flat)
            c.decode(np.frombuffer(want, np.uint8), out, isa=isa)
            assert out.tobytes() == x.tobytes()


@requires_c
@pytest.mark.parametrize("isa", isa_variants())
def test_isa_variants_decode_chunk_pairs_as_the_scalar_reference(isa):
    """The decoder takes chunks two at a time and decodes the same plane of both together when
    both are single-symbol Huffman blocks of the same length (float16's top plane): pairs of
    every kind of block (coded, raw, single symbol, multi-symbol), an odd chunk count and a
    short last chunk."""
    c = _backend.kernels_of("c", "floatcodec")
    f16 = np.dtype(np.float16)
    parts = {
        "coded_pairs": weights(6 * 1024, f16, 4),
        "odd_count_short_last": weights(5 * 1024 + 333, f16, 5),
        "coded_beside_raw": np.concatenate([weights(1024, f16, 6), random_bits(1024, f16, 7)]),
        "coded_beside_constant": np.concatenate([np.full(1024, 0.5, f16), weights(1024, f16, 8)]),
        "coded_beside_multi": np.concatenate([weights(1024, f16, 9, scale=1e-4),
                                              (weights(1024, np.dtype(np.float32), 9) * 1e3).astype(f16)]),
        "two_bit_codes": np.tile(np.array([0.5, 0.25, -1.0, 2.0], f16), 2 * 1024 // 4),
    }
    for name, x in parts.items():
        flat = x.view(np.uint16)
        want = bytes(c.encode(flat, CODES[f16], x.shape, 10, isa="scalar"))
        for which in ("scalar", isa):
            out = np.zeros_like(flat)
            c.decode(np.frombuffer(want, np.uint8), out, isa=which)
            assert out.tobytes() == x.tobytes(), (name, which)


@requires_c
@pytest.mark.parametrize("isa", isa_variants())
@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float16)], ids=["float32", "float16"])
def test_isa_variants_refuse_damage_as_the_scalar_reference(isa, dtype):
    """Damaged blocks behind a resealed header: every variant gives the scalar verdict (float16:
    through the pair decoder, its chunks' top planes decoded two at a time)."""
    c = _backend.kernels_of("c", "floatcodec")
    x = np.concatenate([weights(3000, dtype), np.zeros(1100, dtype)])
    good = small_chunks(x)
    start = first_block(good)
    rng = np.random.default_rng(3)
    for _ in range(200):
        blob = bytearray(good)
        pos = int(rng.integers(start, len(blob)))
        blob[pos] ^= 1 << int(rng.integers(0, 8))
        data = np.frombuffer(reseal(blob), np.uint8)
        verdicts = []
        for which in ("scalar", isa):
            out = np.zeros(x.size, UINT[dtype.itemsize])
            try:
                c.decode(data, out, isa=which)
                verdicts.append(out.tobytes())
            except tp.CorruptDataError:
                verdicts.append("corrupt")
        assert verdicts[0] == verdicts[1] == "corrupt"


@requires_c
def test_thread_count_does_not_change_output():
    x = weights(9 * CHUNK["float32"] + 5, np.dtype(np.float32), seed=11)
    before = tp.get_num_threads()
    try:
        tp.set_num_threads(1)
        one = tp.float_encode(x)
        tp.set_num_threads(2)
        two = tp.float_encode(x)
        assert_same_bits(tp.float_decode(one), x)
    finally:
        tp.set_num_threads(before)
    assert one == two


@requires_c
@pytest.mark.skipif("numba" not in _backend.available_backends(), reason="numba missing")
@pytest.mark.parametrize("dtype", DTYPES, ids=ids(DTYPES))
def test_c_and_numba_write_and_read_identical_streams(dtype):
    c, nb = _backend.kernels_of("c", "floatcodec"), _backend.kernels_of("numba", "floatcodec")
    for name in ("specials_tiled", "weights_two_chunks_and_a_bit", "constant", "random_bits",
                 "scalar_0d", "empty"):
        x = cases(dtype)[name]
        flat = x.reshape(-1).view(UINT[dtype.itemsize])
        for chunk_log2 in (10, 16):
            blob = bytes(c.encode(flat, CODES[dtype], x.shape, chunk_log2))
            assert bytes(nb.encode(flat, CODES[dtype], x.shape, chunk_log2)) == blob
            assert nb.parse(np.frombuffer(blob, np.uint8)) == c.parse(np.frombuffer(blob, np.uint8))
            out = np.zeros_like(flat)
            nb.decode(np.frombuffer(blob, np.uint8), out)
            assert out.tobytes() == x.tobytes()


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(DTYPES), st.binary(min_size=0, max_size=3000), st.integers(1, 3))
def test_any_bytes_round_trip(dtype, data, rows):
    n = len(data) // dtype.itemsize // rows * rows
    x = np.frombuffer(data[:n * dtype.itemsize], dtype).reshape(rows, -1) if n else np.zeros((rows, 0), dtype)
    assert_same_bits(tp.float_decode(tp.float_encode(x)), x)


# ---- damaged and forged streams ----------------------------------------------------------------

def first_block(blob, ndim=1):
    count, chunk_log2, width = struct.unpack_from("<Q", blob, 8)[0], blob[7], ref.WIDTH[blob[5]]
    return 16 + 8 * ndim + 4 * (-(-count // (1 << chunk_log2)) * width) + 4


def reseal(blob, ndim=1, width=None):
    """Recompute the header checksum so a damaged block reaches the block decoder (the header's
    size from its own fields, or from `width` when its dtype code is the damage)."""
    blob = bytearray(blob)
    if width is not None:
        count, chunk_log2 = struct.unpack_from("<Q", blob, 8)[0], blob[7]
        hsize = 16 + 8 * ndim + 4 * (-(-count // (1 << chunk_log2)) * width) + 4
    else:
        hsize = first_block(blob, ndim)
    struct.pack_into("<I", blob, hsize - 4, crc32(bytes(blob[:hsize - 4])))
    return bytes(blob)


SEEDS = {
    "bf16_weights": tp.float_encode(weights(3000, BF16)),
    "f32_small_chunks": small_chunks(np.concatenate([weights(2100, np.dtype(np.float32)),
                                                     np.ones(1024, np.float32)])),
    "f64_specials": tp.float_encode(np.tile(special_values(np.dtype(np.float64)), 9)),
}


def assert_corrupt(blob):
    with pytest.raises(tp.CorruptDataError):
        tp.float_decode(blob)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SEEDS)), st.data())
def test_any_mutation_raises(seed_name, data):
    blob = bytearray(SEEDS[seed_name])
    kind = data.draw(st.sampled_from(["flip", "truncate", "append", "insert", "delete", "reseal"]))
    if kind in ("flip", "reseal"):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] ^= 1 << data.draw(st.integers(0, 7))
        if kind == "reseal":  # damage behind a valid header checksum
            hsize = first_block(SEEDS[seed_name])
            assume(pos >= 16 + 8 and not hsize - 4 <= pos < hsize)  # resealing would undo it
            blob = bytearray(reseal(blob))
    elif kind == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif kind == "append":
        blob += bytes(data.draw(st.lists(st.integers(0, 255), min_size=1, max_size=9)))
    elif kind == "insert":
        pos = data.draw(st.integers(0, len(blob)))
        blob[pos:pos] = bytes([data.draw(st.integers(0, 255))])
    else:
        del blob[data.draw(st.integers(0, len(blob) - 1))]
    assert_corrupt(bytes(blob))


def test_crafted_headers_raise():
    good = SEEDS["bf16_weights"]
    cases_ = []
    b = bytearray(good); b[:4] = b"TPHF"; cases_.append(bytes(b))           # the Huffman stream's magic
    b = bytearray(good); b[5] = 4; cases_.append(reseal(b, width=2))        # dtype code
    b = bytearray(good); b[5] = 0; cases_.append(reseal(b, width=4))        # float32: other table
    b = bytearray(good); b[6] = 33; cases_.append(bytes(b))                 # ndim
    b = bytearray(good); b[7] = 9; cases_.append(reseal(b))                 # chunk_log2 too small
    b = bytearray(good); b[7] = 21; cases_.append(reseal(b))                # ... too large
    b = bytearray(good); struct.pack_into("<Q", b, 8, 1 << 60); cases_.append(bytes(b))
    b = bytearray(good); struct.pack_into("<Q", b, 16, 2999); cases_.append(reseal(b))  # shape
    b = bytearray(good); b[first_block(good)] = 7; cases_.append(bytes(b))  # block type
    cases_ += [b"", b"TPFC", good[:20], good + b"\0", tp.huffman_encode(np.zeros(9, np.uint8))]
    for blob in cases_:
        assert_corrupt(blob)


def test_other_format_version_is_named():
    blob = bytearray(SEEDS["bf16_weights"])
    for version in (0, 2, 255):
        blob[4] = version
        with pytest.raises(tp.CorruptDataError, match=f"unsupported stream version {version}"):
            tp.float_decode(bytes(blob))


def test_forged_counts_are_refused_before_allocating():
    """A header claiming 2^36 elements with blocks that cannot hold them (raw blocks too short,
    single-symbol blocks with wrong checksums) fails from the block table, allocating nothing."""
    count, chunk_log2, width = 1 << 36, 20, 2
    n_blocks = (count >> chunk_log2) * width
    raw = b"\x00" + bytes(4) + bytes(10)

    def forge(block):
        table = struct.pack(f"<{n_blocks}I", *([len(block)] * n_blocks))
        head = b"TPFC" + bytes([1, 3, 1, chunk_log2]) + struct.pack("<QQ", count, count) + table
        return head + struct.pack("<I", zlib.crc32(head)) + block * n_blocks

    for block, why in ((raw, "type 0, cannot hold"), (b"\x01" + bytes(4) + b"\x07", "single-symbol")):
        with pytest.raises(tp.CorruptDataError, match=why):
            tp.float_decode(forge(block))


def test_max_count():
    x = weights(100, BF16)
    blob = tp.float_encode(x)
    assert tp.float_decode(blob, max_count=100).size == 100
    with pytest.raises(tp.CorruptDataError, match="declares 100 elements, more than the 99 expected"):
        tp.float_decode(blob, max_count=99)
    with pytest.raises(tp.InvalidArgumentError):
        tp.float_decode(blob, max_count=-1)


def test_out_is_untouched_when_the_block_table_is_refused():
    x = weights(3000, np.dtype(np.float32))
    blob = bytearray(tp.float_encode(x))
    blob[first_block(blob)] = 7  # the first block's type byte (not under the header checksum)
    out = np.full(x.shape, 77, np.float32)
    with pytest.raises(tp.CorruptDataError):
        tp.float_decode(bytes(blob), out=out)
    assert (out == 77).all()


# ---- arguments -----------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.zeros(4, np.int32), np.zeros(4, np.complex64), np.zeros(4, bool),
                                 np.zeros(4, ">f4"), np.zeros(4, object), np.zeros(4, np.uint16)])
def test_other_dtypes_are_refused(bad):
    with pytest.raises(tp.DTypeError, match="float32, float64, float16 or bfloat16"):
        tp.float_encode(bad)


def test_bad_arguments():
    x = weights(60, np.dtype(np.float32)).reshape(6, 10)
    with pytest.raises(tp.DTypeError):
        tp.float_encode([1.0, 2.0])
    with pytest.raises(tp.InvalidArgumentError, match="contiguous"):
        tp.float_encode(x[:, ::2])
    with pytest.raises(tp.InvalidArgumentError, match="dimensions"):
        tp.float_encode(np.zeros((1,) * 33, np.float32))
    with pytest.raises(tp.DTypeError, match="masked"):
        tp.float_encode(np.ma.masked_array(x, mask=x > 0))
    assert tp.float_encode(np.matrix(x)) == tp.float_encode(x)
    blob = tp.float_encode(x)
    with pytest.raises(tp.DTypeError):
        tp.float_decode(blob, out=np.empty((6, 10), np.float64))
    with pytest.raises(tp.InvalidArgumentError, match="shape"):
        tp.float_decode(blob, out=np.empty(60, np.float32))
    readonly = np.empty((6, 10), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(tp.InvalidArgumentError):
        tp.float_decode(blob, out=readonly)
    with pytest.raises(tp.InvalidArgumentError, match="contiguous"):
        tp.float_decode(blob, out=np.empty((6, 20), np.float32)[:, ::2])
    with pytest.raises(tp.DTypeError):
        tp.float_decode(12345)
    shared = np.zeros(max(len(blob), 240) + 4, np.uint8)
    shared[:len(blob)] = np.frombuffer(blob, np.uint8)
    overlap = shared[:240].view(np.float32).reshape(6, 10)
    with pytest.raises(tp.InvalidArgumentError, match="overlaps"):
        tp.float_decode(shared[:len(blob)], out=overlap)
