"""Deep Compression of whole checkpoints: prune, quantize to int8, Huffman-code; and back.

Per tensor (floating point, at least `keep_small` elements, not listed in `keep`):
  1. magnitude pruning to `sparsity` (exactly round((1 - sparsity) * n) weights kept),
  2. symmetric int8 quantization per output channel (`axis`; per tensor for 1-D tensors, per
     block of `block_size` along the last axis when given), with `bits` < 8 using fewer levels,
  3. entropy coding of the int8 values, as whichever is smaller of
       "int8-dense":  one Huffman stream of all values, or
       "int8-sparse": the nonzero values and the gaps between them (Deep Compression's layout),
                      each Huffman-coded. A gap is the count of zeros before a nonzero (and,
                      last, after the last one); it is written as gap // 255 escape bytes (255)
                      then one byte gap % 255, so the gaps account for every position and a
                      record whose shape disagrees with its streams is caught before allocating.
Everything else is stored losslessly: float tensors (float32, float64, float16, bfloat16) with
the float codec ("float": tp.float_encode's stream), other dtypes as their bytes, raw or
Huffman-coded ("lossless"), whichever is smaller; with lossless=True every tensor is. docs/format.md
specifies every codec.
"""

import collections
import collections.abc
import concurrent.futures
import math
import numbers
import os
import reprlib

import ml_dtypes
import numpy as np

from . import _checks, container
from .errors import CorruptDataError, DTypeError, InvalidArgumentError
from .floatcodec import float_decode, float_encode
from .huffman import huffman_decode, huffman_encode
from .prune import prune_
from .quant import dequantize_int8, quantize_int8

GAP_ESCAPE = 255
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
# the dtypes the kernels (quantize_int8, prune_) read as they are; other floats go through float32
KERNEL_FLOATS = (np.dtype(np.float32), np.dtype(np.float16), BFLOAT16)
MAX_THREADS = 1024
FLOAT_CODEC_DTYPES = ("float32", "float64", "float16", "bfloat16")
ERROR_CHUNK = 1 << 18  # elements per step of _error_stats' float64 arithmetic


def _options(sparsity, bits, axis, block_size, keep_small, keep, lossless=False):
    if isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real) or not 0.0 <= float(sparsity) < 1.0:
        raise InvalidArgumentError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not 2 <= bits <= 8:
        raise InvalidArgumentError(f"bits must be an int from 2 to 8, got {bits!r}")
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise InvalidArgumentError(f"axis must be an int, got {axis!r}")
    if block_size is not None and (isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral) or block_size < 1):
        raise InvalidArgumentError(f"block_size must be None or an int >= 1, got {block_size!r}")
    if isinstance(keep_small, bool) or not isinstance(keep_small, numbers.Integral) or keep_small < 0:
        raise InvalidArgumentError(f"keep_small must be an int >= 0, got {keep_small!r}")
    if not isinstance(lossless, bool):
        raise InvalidArgumentError(f"lossless must be True or False, got {lossless!r}")
    return float(sparsity), int(bits), int(axis), block_size, int(keep_small), frozenset(keep or ()), lossless


def _threads(threads):
    if threads is None:
        return min(os.cpu_count() or 1, 8)
    return _checks.positive_int(threads, "threads", maximum=MAX_THREADS)


def _is_float(dtype):
    return dtype.kind == "f" or dtype == BFLOAT16


def _as_array(name, value):
    """`value` as a plain native-endian numeric ndarray (bool, int, float, bfloat16), checked;
    never a copy of an ndarray (see _contiguous)."""
    if not container._is_name(name):
        raise InvalidArgumentError(f"tensor names must be non-empty strings that UTF-8 can encode, got {name!r}")
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):  # subclasses as plain views; masked arrays refused
        value = _checks.require_ndarray(value, f"tensor {name!r}")
    array = np.asarray(value)
    if ((array.dtype.kind not in "fiub" and array.dtype != BFLOAT16)
            or array.dtype.byteorder == (">" if np.little_endian else "<")):
        raise DTypeError(f"tensor {name!r} has dtype {array.dtype}; expected a native-endian numeric array")
    return array


def _contiguous(array):
    # The pipeline works on its own copies where it must (a checkpoint is not updated in place):
    # C order and element alignment, as the kernels need. Not np.ascontiguousarray, which makes
    # a 0-d array 1-d.
    return array if array.flags.c_contiguous and array.flags.aligned else array.copy(order="C")


# --- encoding --------------------------------------------------------------------------------

def _lossless(name, array):
    """The record of a tensor stored bit for bit: a float tensor as the float codec's stream when
    that is smaller than its bytes, any other as its bytes, Huffman-coded when that is smaller.
    The bytes are a view of the (C-contiguous) array, never a copy."""
    raw = array.reshape(-1).view(np.uint8)
    if raw.size and _is_float(array.dtype):
        coded = float_encode(array)
        if len(coded) < raw.size:
            return name, array.shape, array.dtype.name, "float", {}, {"data": coded}
    elif raw.size:
        coded = huffman_encode(raw)
        if len(coded) < raw.size:
            return name, array.shape, array.dtype.name, "lossless", {"huffman": True}, {"data": coded}
    return name, array.shape, array.dtype.name, "lossless", {"huffman": False}, {"data": raw}


def _quantize(x, bits, axis, block_size):
    """int8 values and float32 scales of x (float32), symmetric, with 2**(bits-1) - 1 levels."""
    if bits == 8:
        if block_size is not None:
            return quantize_int8(x, axis=-1, block_size=block_size) + ("block", block_size)
        if x.ndim <= 1:
            return quantize_int8(x, axis=None) + ("tensor", None)
        return quantize_int8(x, axis=axis) + ("channel", axis)
    # Fewer bits: the same quantizer with scales stretched so |q| <= 2**(bits-1) - 1.
    levels = 2 ** (bits - 1) - 1
    if block_size is not None:
        _, scale = quantize_int8(x, axis=-1, block_size=block_size)
        q, scale = quantize_int8(x, axis=-1, block_size=block_size, scale=scale * np.float32(127 / levels))
        return q, scale, "block", block_size
    if x.ndim <= 1:
        _, scale = quantize_int8(x, axis=None)
        q, scale = quantize_int8(x, axis=None, scale=np.float32(scale) * np.float32(127 / levels))
        return q, scale, "tensor", None
    _, scale = quantize_int8(x, axis=axis)
    q, scale = quantize_int8(x, axis=axis, scale=scale * np.float32(127 / levels))
    return q, scale, "channel", axis


def encode_gaps(flat_nonzero, n):
    """The gap bytes of nonzero positions `flat_nonzero` (strictly increasing) in n elements."""
    gaps = np.diff(flat_nonzero, prepend=-1, append=n) - 1  # zeros before each nonzero, then the tail
    escapes = gaps // GAP_ESCAPE
    out = np.full(int(gaps.size + escapes.sum()), GAP_ESCAPE, np.uint8)
    out[np.cumsum(escapes + 1) - 1] = gaps % GAP_ESCAPE
    return out


def decode_gaps(gap_bytes, nnz, n):
    """Positions of the nonzeros from encode_gaps' bytes, or None when the bytes do not describe
    exactly `nnz` nonzeros in `n` elements."""
    gap_bytes = np.asarray(gap_bytes, np.uint8)
    ends = np.flatnonzero(gap_bytes != GAP_ESCAPE)
    if ends.size != nnz + 1 or ends[-1] != gap_bytes.size - 1:
        return None
    escapes_before = np.diff(ends, prepend=-1) - 1
    gaps = escapes_before.astype(np.int64) * GAP_ESCAPE + gap_bytes[ends]
    if int(gaps.sum()) + nnz != n:
        return None
    return (np.cumsum(gaps[:-1] + 1) - 1) if nnz else np.zeros(0, np.int64)


def _compress_one(name, array, sparsity, bits, axis, block_size, keep_small, keep, lossless):
    if lossless or not _is_float(array.dtype) or array.size < max(keep_small, 1) or name in keep:
        return _lossless(name, array)
    # float32, float16 and bfloat16 go to the kernels as they are (their int8 results are those
    # of the float32 conversion, exactly); a copy only where pruning writes. Others via float32.
    if array.dtype in KERNEL_FLOATS:
        x = array.copy() if sparsity > 0.0 else array
    else:
        x = array.astype(np.float32)
    if not np.isfinite(x).all():
        raise InvalidArgumentError(f"tensor {name!r} holds NaN or Inf; list it in keep= to store it losslessly")
    if sparsity > 0.0:
        prune_(x, 1.0 - sparsity)
    q, scale, granularity, group = _quantize(x, bits, axis, block_size)
    del x
    params = {"bits": bits, "granularity": granularity, "group": group,
              "scale_shape": list(np.shape(scale))}
    scale_bytes = np.ascontiguousarray(scale, dtype="<f4").tobytes()
    flat = q.reshape(-1)
    density = np.count_nonzero(flat) / max(flat.size, 1)
    candidates = []
    if density > 0.2:
        candidates.append(("int8-dense", {"values": huffman_encode(flat)}))
    if density < 0.8:
        nonzero = np.flatnonzero(flat)
        candidates.append(("int8-sparse", {"values": huffman_encode(flat[nonzero]),
                                           "gaps": huffman_encode(encode_gaps(nonzero, flat.size))}))
        nnz = int(nonzero.size)
        del nonzero
    codec, parts = min(candidates, key=lambda c: sum(len(p) for p in c[1].values()))
    if codec == "int8-sparse":
        params["nnz"] = nnz
    parts["scales"] = scale_bytes
    params["source_dtype"] = array.dtype.name
    params["error"] = _error_stats(array, _dequantize(q, scale, granularity, group))
    return name, array.shape, "float32", codec, params, parts


def _dequantize(q, scale, granularity, group, dtype=np.float32):
    if granularity == "block":
        return dequantize_int8(q, scale, axis=-1, block_size=group, dtype=dtype)
    return dequantize_int8(q, scale, axis=None if granularity == "tensor" else group, dtype=dtype)


def _error_stats(original, restored):
    """What a lossy record costs: max |error|, RMS error, and the RMS of the original; in
    float64, ERROR_CHUNK elements at a time (a few MB of temporaries, whatever the tensor)."""
    original, restored = original.reshape(-1), restored.reshape(-1)
    max_abs = sum_sq = ref_sum_sq = ref_max_abs = 0.0
    for start in range(0, original.size, ERROR_CHUNK):
        x = original[start:start + ERROR_CHUNK].astype(np.float64)
        d = restored[start:start + ERROR_CHUNK].astype(np.float64)
        d -= x
        max_abs = max(max_abs, float(d.max()), -float(d.min()))
        ref_max_abs = max(ref_max_abs, float(x.max()), -float(x.min()))
        sum_sq += float(np.square(d, out=d).sum())  # not np.dot: BLAS threads fight the kernels' for the cores
        ref_sum_sq += float(np.square(x, out=x).sum())
    n = max(original.size, 1)
    return {"max_abs": max_abs, "rms": math.sqrt(sum_sq / n),
            "ref_rms": math.sqrt(ref_sum_sq / n), "ref_max_abs": ref_max_abs}


def iter_records(tensors, sparsity=0.0, bits=8, axis=0, block_size=None, keep_small=1024, keep=(),
                 threads=None, progress=None, lossless=False):
    """The container records of compress() (see there), one at a time and in order, for
    writers that stream them (container.write_file). Options, names and dtypes are checked
    here, before the first record is made. Tensors are taken from the mapping one at a time,
    when their turn comes, and dropped once compressed: with a lazy mapping (a
    checkpoints.Checkpoint, which maps each tensor from its file when asked) at most one input
    tensor per thread and a few records per thread are alive at once, whatever the checkpoint's
    size. `progress`, when given, wraps the iterator of finished tensors (e.g. a tqdm bar)."""
    options = _options(sparsity, bits, axis, block_size, keep_small, keep, lossless)
    if not hasattr(tensors, "items"):
        raise DTypeError(f"tensors must be a mapping of names to arrays, got {type(tensors).__name__}")
    threads = _threads(threads)
    names = list(tensors.keys())
    for name in names:  # a lazy mapping maps the tensor here without reading it
        _as_array(name, tensors[name])
    work = lambda name: _compress_one(name, _contiguous(_as_array(name, tensors[name])), *options)
    done = map(work, names) if threads <= 1 or len(names) <= 1 else _ordered_map(work, names, threads)
    return progress(done, len(names)) if progress else done


def _ordered_map(fn, items, threads):
    """fn(item) for each item in `threads` threads (the kernels release the GIL), yielded in
    order. Unlike Executor.map, which submits every item at once and keeps every finished
    result until it is consumed, at most 2 * threads items are in flight or waiting."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads)
    pending = collections.deque()
    try:
        for item in items:
            if len(pending) == 2 * threads:
                yield pending.popleft().result()
            pending.append(pool.submit(fn, item))
        while pending:
            yield pending.popleft().result()
    finally:  # also when the consumer stops early (an error while writing)
        pool.shutdown(wait=True, cancel_futures=True)


def compress(tensors, sparsity=0.0, bits=8, axis=0, block_size=None, keep_small=1024, keep=(),
             threads=None, lossless=False):
    """Compress a mapping of name -> array into the bytes of a .tpz container.

    `sparsity` is the fraction of each large floating-point tensor's weights set to zero (by
    magnitude); `bits` (2..8) the quantization width; `axis` the output-channel axis that gets
    one scale per channel (1-D tensors get one scale); `block_size` switches to one scale per
    block of that many elements along the last axis. Tensors with fewer than `keep_small`
    elements, non-float tensors and those named in `keep` are stored losslessly (float tensors
    with the float codec: tp.float_encode). `lossless=True` stores every tensor bit for bit
    (the other options then change nothing): bfloat16 weights to about 2/3 of their size,
    float32 to about 5/6. Tensors are compressed in `threads` threads (None: the cores, at most
    8; else an int in [1, 1024]).
    """
    return container.build(iter_records(tensors, sparsity, bits, axis, block_size, keep_small, keep, threads,
                                        lossless=lossless))


def save(path, tensors, sparsity=0.0, bits=8, axis=0, block_size=None, keep_small=1024, keep=(),
         threads=None, progress=None, lossless=False):
    """compress() into the file `path` (the options as compress()'s; `progress` as
    iter_records'), written atomically (see container.write_file). Each tensor's compressed
    record goes to the file as soon as it is made, so memory holds the input tensors and a few
    records, never the whole compressed checkpoint."""
    container.write_file(path, iter_records(tensors, sparsity, bits, axis, block_size, keep_small,
                                            keep, threads, progress, lossless))


# --- decoding --------------------------------------------------------------------------------

def _corrupt(record, why):
    return CorruptDataError(f"record {record.name!r}: {why}")


def _is_int(x, lo, hi):
    return container._is_int(x) and lo <= x <= hi


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0


def _check_record(record):
    """The codec, its parameters and its parts as docs/format.md allows them, before any part
    is read (container.Reader has checked the name, shape, dtype and part spans)."""
    p, ndim = record.params, len(record.shape)
    if record.codec == "lossless":
        if not isinstance(p.get("huffman"), bool):
            raise _corrupt(record, "lossless parameter 'huffman' must be true or false")
        parts = {"data"}
    elif record.codec == "float":
        if record.dtype not in FLOAT_CODEC_DTYPES:
            raise _corrupt(record, f"float records hold float32, float64, float16 or bfloat16, not {record.dtype}")
        if p:
            raise _corrupt(record, f"float records have no parameters, got {sorted(p)}")
        parts = {"data"}
    elif record.codec in ("int8-dense", "int8-sparse"):
        if record.dtype != "float32":
            raise _corrupt(record, f"{record.codec} records decode to float32, not {record.dtype}")
        if not _is_int(p.get("bits"), 2, 8):
            raise _corrupt(record, f"invalid bits {reprlib.repr(p.get('bits'))}")
        granularity, group = p.get("granularity"), p.get("group")
        if granularity == "tensor":
            valid_group = group is None
        elif granularity == "channel":
            valid_group = ndim > 0 and _is_int(group, -ndim, ndim - 1)
        elif granularity == "block":
            valid_group = ndim > 0 and _is_int(group, 1, container.MAX_DIM)
        else:
            raise _corrupt(record, f"unknown quantization granularity {reprlib.repr(granularity)}")
        if not valid_group:
            raise _corrupt(record, f"invalid group {reprlib.repr(group)} for {granularity} scales of {ndim} dimensions")
        if not container.is_shape(p.get("scale_shape")):
            raise _corrupt(record, "invalid scale shape")
        if "source_dtype" in p and not (isinstance(p["source_dtype"], str) and p["source_dtype"] in container.DTYPES):
            raise _corrupt(record, f"unsupported source dtype {reprlib.repr(p['source_dtype'])}")
        error = p.get("error", {})
        if not (isinstance(error, dict) and all(_is_number(v) for v in error.values())):
            raise _corrupt(record, "invalid error statistics")
        parts = {"values", "scales"}
        if record.codec == "int8-sparse":
            if not _is_int(p.get("nnz"), 0, math.prod(record.shape)):
                raise _corrupt(record, "invalid nonzero count")
            parts.add("gaps")
    else:
        raise _corrupt(record, f"unknown codec {reprlib.repr(record.codec)}")
    if set(record.parts) != parts:
        raise _corrupt(record, f"has parts {sorted(record.parts)}; {record.codec} has {sorted(parts)}")


def _huffman(reader, record, part, expected, exact=True):
    """The bytes of a Huffman-coded part: exactly `expected` of them, or at most that many when
    not `exact`. The bound goes to huffman_decode, which refuses a larger stream before
    allocating anything."""
    data = reader.part(record, part)
    try:
        symbols = huffman_decode(data, max_count=expected)
    except CorruptDataError as exc:
        raise _corrupt(record, f"part {part!r}: {exc}") from None
    if isinstance(symbols, bytes):
        symbols = np.frombuffer(symbols, np.uint8)
    symbols = symbols.reshape(-1)
    if exact and symbols.size != expected:
        raise _corrupt(record, f"part {part!r} decodes to {symbols.size} symbols, expected {expected}")
    return symbols


def _part_size(reader, record, part, expected):
    size = record.parts[part][1]
    if size != expected:
        raise _corrupt(record, f"part {part!r} holds {size} bytes, expected {expected}")
    return reader.part(record, part)


def _decode_record(reader, record, dtype=None):
    """The tensor of `record`; a quantized one as float32, or as `dtype` (a float dtype) when given."""
    _check_record(record)
    n = math.prod(record.shape)
    if record.codec == "lossless":
        dtype = np.dtype(record.dtype)  # one of container.DTYPES
        nbytes = n * dtype.itemsize
        if record.params["huffman"]:
            data = _huffman(reader, record, "data", nbytes).tobytes()
        else:
            data = _part_size(reader, record, "data", nbytes)
        return np.frombuffer(data, dtype).reshape(record.shape).copy()
    if record.codec == "float":
        try:  # the bound: refused before allocating when the stream declares more elements
            x = float_decode(reader.part(record, "data"), max_count=n)
        except CorruptDataError as exc:
            raise _corrupt(record, f"part 'data': {exc}") from None
        if x.dtype.name != record.dtype or x.shape != tuple(record.shape):
            raise _corrupt(record, f"part 'data' holds {x.dtype.name} {x.shape}, the record "
                                   f"{record.dtype} {tuple(record.shape)}")
        return x
    p = record.params
    scale_shape = p["scale_shape"]
    scales = _part_size(reader, record, "scales", 4 * math.prod(scale_shape))
    scales = np.frombuffer(scales, "<f4").astype(np.float32).reshape(scale_shape)
    if record.codec == "int8-dense":
        q = _huffman(reader, record, "values", n).view(np.int8)
    else:
        nnz = p["nnz"]
        values = _huffman(reader, record, "values", nnz).view(np.int8)
        # nnz + 1 gaps summing to n - nnz: each is g // 255 escapes and one byte
        max_gap_bytes = nnz + 1 + (n - nnz) // GAP_ESCAPE
        positions = decode_gaps(_huffman(reader, record, "gaps", max_gap_bytes, exact=False), nnz, n)
        if positions is None:
            raise _corrupt(record, "its gaps do not describe its shape and nonzero count")
        q = np.zeros(n, np.int8)
        q[positions] = values
    q = q.reshape(record.shape)
    direct = dtype if dtype is not None and dtype in KERNEL_FLOATS else np.float32  # what dequantize_int8 writes
    try:
        x = _dequantize(q, scales, p["granularity"], p.get("group"), direct)
    except (ValueError, TypeError) as exc:  # the kernels' InvalidArgumentError / DTypeError
        raise _corrupt(record, f"scales do not fit the values ({exc})") from None
    return x if dtype is None else x.astype(dtype, copy=False)


def _wanted(reader, names):
    if names is None:
        return reader.names()
    if isinstance(names, (str, bytes)):
        raise DTypeError("names must be a list of tensor names, not one string")
    wanted = list(names)
    for name in wanted:
        if not isinstance(name, str):
            raise DTypeError(f"tensor names are strings, got {type(name).__name__}")
    return wanted


def _decode(reader, names):
    return {name: _decode_record(reader, reader.record(name)) for name in _wanted(reader, names)}


class Decoded(collections.abc.Mapping):
    """The tensors of an open container.Reader (only `names` when given), each decoded when
    asked, for writers that stream them one at a time (checkpoints.write, write_sharded).
    With `source_dtypes`, a quantized tensor comes back in the float dtype it had before
    compression (bfloat16 and float16 rounded to nearest even from the float32 result) instead
    of float32. `spec(name)` is (dtype, shape) without decoding. Unknown names raise
    MissingTensorError here; damaged records CorruptDataError when decoded."""

    def __init__(self, reader, names=None, source_dtypes=False):
        self._reader = reader
        self._records = {name: reader.record(name) for name in _wanted(reader, names)}
        self._source_dtypes = source_dtypes

    def _dtype(self, record):
        source = record.params.get("source_dtype") if record.codec.startswith("int8") else None
        if self._source_dtypes and isinstance(source, str) and source in container.DTYPES and _is_float(np.dtype(source)):
            return np.dtype(source)
        return np.dtype(record.dtype)  # one of container.DTYPES

    def spec(self, name):
        record = self._records[name]
        _check_record(record)
        return self._dtype(record), record.shape

    def __getitem__(self, name):
        record = self._records[name]
        return _decode_record(self._reader, record, self._dtype(record) if self._source_dtypes else None)

    def __iter__(self):
        return iter(self._records)

    def __len__(self):
        return len(self._records)


def decompress(blob, names=None):
    """The tensors of compress()'s bytes (only `names` when given), as a dict of arrays:
    float32 for quantized tensors, the original dtype for lossless ones (0-d tensors stay 0-d).
    `blob` is bytes-like (a file is read with load()). Damaged or forged data raises
    CorruptDataError; no record makes this allocate more than its shape declares."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise DTypeError(f"decompress takes the bytes of a .tpz container, got {type(blob).__name__}; "
                         "read a file with load()")
    return _decode(container.Reader(blob), names)


def load(path, names=None):
    """Read tensors from the .tpz file at `path` (str, os.PathLike, or bytes, which is a path
    as open() takes it; the bytes of a container go to decompress()). With `names`, only those
    records are read and decoded. Damaged or forged files raise CorruptDataError."""
    with container.Reader(path=path) as reader:
        return _decode(reader, names)
