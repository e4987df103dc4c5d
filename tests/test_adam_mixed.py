"""Mixed-precision Adam (docs/mixed_precision.md): bfloat16 / float16 params, grads and states,
float32 master weights and stochastic rounding.

Every valid dtype combination of the docs' table, under every option, equals the NumPy
reference (tests/reference/adam.py: ml_dtypes' / NumPy's rounding and the spec's generator,
written independently of csrc/half.h) bit for bit on the live backend; every C variant equals
the scalar one; master weights are the all-float32 step; stochastic rounding is the same bits
on every thread count and backend, depends on what the spec says it does and is unbiased; the
found-inf rule of half grads; and every bad combination is refused before anything is written.
"""

import itertools
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tensorpress as tp
from tensorpress import _backend, _consts
from tensorpress.errors import DTypeError, InvalidArgumentError
from conftest import isa_variants, requires_c
from reference.adam import (BFLOAT16, FLOAT16, adam_mixed_reference, adam_mixed_reference_list,
                            grad_overflows, sr_bits)

F32, F64, BF16, F16 = np.dtype(np.float32), np.dtype(np.float64), BFLOAT16, FLOAT16
NAMES = {F32: "f32", F64: "f64", BF16: "bf16", F16: "f16"}
HALVES = (BF16, F16)

# Every valid row of the docs' table but float64 (tests/test_adam.py): (param, grad, states,
# how the param is written). A float32 param is written as it is; a half one to nearest, from a
# float32 master, or stochastically.
COMBOS = ([(F32, g, s, "plain") for g in (F32, BF16, F16) for s in (F32, BF16)]
          + [(p, g, s, mode) for p in HALVES for g in (p, F32) for s in (F32, BF16)
             for mode in ("plain", "sr", "master")])


def combo_id(combo):
    p, g, s, mode = combo
    return f"p{NAMES[p]}-g{NAMES[g]}-s{NAMES[s]}-{mode}"


# Options that only change arithmetic (the amsgrad and grad-scale forms are parametrized, as
# the kernels compile them separately). beta1 = 0.2 takes torch.lerp's other formula.
DECAYS = {"none": dict(weight_decay=0.0), "l2": dict(weight_decay=0.1),
          "adamw": dict(weight_decay=0.1, decoupled_weight_decay=True)}
RUNTIME_OPTIONS = [dict(DECAYS[d], maximize=mx, betas=(b1, 0.999))
                   for d in DECAYS for mx in (False, True) for b1 in (0.9, 0.2)]
# 3 is not a power of two: dividing by it differs from multiplying by 1/3.
GRAD_SCALES = [None, 3.0]
SMALL_SHAPES = [(0,), (1,), (7,), (33,), (3, 5, 7), (1000,)]
PUBLIC_KEYS = ("lr", "betas", "eps", "weight_decay", "decoupled_weight_decay", "amsgrad",
               "maximize", "grad_scale", "stochastic_rounding", "seed")


# --- helpers ------------------------------------------------------------------------------------

def make_tensor(rng, shape, combo, amsgrad, grad_size=1.0):
    """[param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq or None, master or None]. With a
    master the param holds other values: it is only written."""
    pd, gd, sd, mode = combo
    normal = lambda scale=1.0: scale * rng.standard_normal(shape)  # noqa: E731
    p = normal().astype(pd)
    g = normal(grad_size).astype(gd)
    m = normal(0.1).astype(sd)
    v = np.abs(normal(0.01)).astype(sd)
    vmax = np.abs(normal(0.01)).astype(sd) if amsgrad else None
    master = (normal() + 1e-3).astype(np.float32) if mode == "master" else None
    return [p, g, m, v, vmax, master]


def copies(state):
    return [None if a is None else a.copy() for a in state]


def options_for(combo, amsgrad, grad_scale, extra=None, seed=0):
    opts = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                decoupled_weight_decay=False, amsgrad=amsgrad, maximize=False,
                grad_scale=grad_scale, stochastic_rounding=combo[3] == "sr", seed=seed)
    opts.update(extra or {})
    return opts


def run_tp(state, step, opts, tensor_index=None):
    """The public step on one tensor (the live backend)."""
    p, g, m, v, vmax, master = state
    kwargs = {k: opts[k] for k in PUBLIC_KEYS if k in opts}
    if tensor_index is not None:
        kwargs["tensor_indices"] = [tensor_index]
    return tp.adam_step(p, g, m, v, step=step, max_exp_avg_sqs=vmax, master_params=master, **kwargs)


def reference_kwargs(opts):
    kw = {k: opts[k] for k in PUBLIC_KEYS if k in opts and k != "decoupled_weight_decay"}
    kw["decoupled"] = opts.get("decoupled_weight_decay", False)
    return kw


def run_ref(state, step, opts, tensor_index=0):
    p, g, m, v, vmax, master = state
    return adam_mixed_reference(p, g, m, v, vmax, master, step=step, tensor_index=tensor_index,
                                **reference_kwargs(opts))


def flags_of(opts):
    return ((_consts.ADAM_DECOUPLED if opts.get("decoupled_weight_decay") else 0)
            | (_consts.ADAM_AMSGRAD if opts.get("amsgrad") else 0)
            | (_consts.ADAM_MAXIMIZE if opts.get("maximize") else 0)
            | (_consts.ADAM_GRAD_SCALE if opts.get("grad_scale") is not None else 0)
            | (_consts.ADAM_STOCHASTIC_ROUNDING if opts.get("stochastic_rounding") else 0))


def run_kernel(backend, states, step, opts, indices=None, isa=None):
    """One call of a backend's kernel over a list of tensor states (bypasses the public layer:
    how a C variant or the other backend is run)."""
    cols = list(zip(*states))
    lists = tuple(tuple(c) for c in cols[:4])
    lists += (None if cols[4][0] is None else tuple(cols[4]),)
    lists += (None if all(x is None for x in cols[5]) else tuple(cols[5]),)
    beta1, beta2 = opts.get("betas", (0.9, 0.999))
    kernels = _backend.kernels_of(backend, "adam")
    extra = {} if isa is None else {"isa": isa}
    return kernels.adam_step(lists, step, opts.get("lr", 1e-3), beta1, beta2, opts.get("eps", 1e-8),
                             opts.get("weight_decay", 0.0), opts.get("grad_scale"), flags_of(opts),
                             opts.get("seed", 0), indices, **extra)


def _bits(a):
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def assert_same_bits(a_state, b_state, what=""):
    """Bit for bit (a zero's sign counts), NaNs by place only: which NaN an IEEE operation
    passes on is the hardware's choice."""
    for k, (a, b) in enumerate(zip(a_state, b_state)):
        if a is None:
            assert b is None
            continue
        assert a.dtype == b.dtype and a.shape == b.shape
        nan_a, nan_b = np.isnan(a.astype(np.float64)), np.isnan(b.astype(np.float64))
        np.testing.assert_array_equal(nan_a, nan_b, err_msg=f"NaN places differ in array {k} {what}")
        bad = np.flatnonzero((_bits(a) != _bits(b)) & ~nan_a)
        assert bad.size == 0, (f"array {k} {what}: {bad.size} elements differ, first at {bad[0]}: "
                               f"{a.reshape(-1)[bad[0]]!r} vs {b.reshape(-1)[bad[0]]!r}")


def assert_unchanged(arrays, before):
    for a, b in zip(arrays, before):
        if a is not None:
            np.testing.assert_array_equal(_bits(a), _bits(b))


def assert_quiet_nans(state):
    """docs: a NaN written to bfloat16 is 0x7fc0 with its sign; to float16 it is quieted."""
    for a in state:
        if a is None or a.dtype not in HALVES:
            continue
        bits = _bits(a)[np.isnan(a.astype(np.float32))] & np.uint16(0x7FFF)
        if a.dtype == BF16:
            assert (bits == 0x7FC0).all(), [hex(b) for b in bits[:5]]
        else:
            assert ((bits & 0x7E00) == 0x7E00).all(), [hex(b) for b in bits[:5]]


with_numba = pytest.mark.skipif("numba" not in _backend.available_backends(), reason="numba missing")
VARIANTS = [isa for isa in isa_variants() if isa != "scalar"]


# --- the live backend against the reference -----------------------------------------------------

@pytest.mark.parametrize("grad_scale", GRAD_SCALES, ids=lambda s: f"scale={s}")
@pytest.mark.parametrize("amsgrad", [False, True], ids=lambda a: f"amsgrad={a}")
@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_every_combination_matches_reference(combo, amsgrad, grad_scale, rng):
    for shape in SMALL_SHAPES:
        for k, extra in enumerate(RUNTIME_OPTIONS):
            opts = options_for(combo, amsgrad, grad_scale, extra, seed=1000 + k)
            ours = make_tensor(rng, shape, combo, amsgrad)
            ref = copies(ours)
            index = 7 if k % 2 else None  # tensor_indices= half of the time
            for step in (1, 2):
                g = rng.standard_normal(shape).astype(combo[1])
                ours[1][...] = g
                ref[1][...] = g
                assert run_tp(ours, step, opts, index) is False
                assert run_ref(ref, step, opts, index or 0) is False
                assert_same_bits(ours, ref, f"{shape} {extra} step {step}")


# Tensors above the threads' threshold (C: 32768 per thread; Numba: 65536): one case per way of
# writing a param (a half one plain, stochastically for each half type, from a master; a float32
# one with half grads), the stream dtypes, amsgrad and grad scale spread over them. Each Numba
# form of a large tensor is a parallel kernel compiled anew in each process (2-4 s), so the
# other tests' large tensors take these same forms; test_c_threads_on_every_combination runs
# every combination through the C threads.
LARGE_CASES = [
    ((F32, BF16, BF16, "plain"), True, 3.0),
    ((BF16, F32, BF16, "sr"), False, None),
    ((BF16, BF16, BF16, "master"), False, 3.0),
    ((F16, F16, F32, "sr"), False, None),
    ((F16, F32, BF16, "plain"), True, 3.0),
]
SR_BF16, SR_F16 = LARGE_CASES[1][0], LARGE_CASES[3][0]


@pytest.mark.parametrize("combo, amsgrad, grad_scale", LARGE_CASES,
                         ids=lambda x: combo_id(x) if isinstance(x, tuple) else str(x))
def test_threaded_sizes_match_reference(combo, amsgrad, grad_scale, rng):
    for extra in (RUNTIME_OPTIONS[8], RUNTIME_OPTIONS[7]):  # AdamW; L2 + maximize + beta1 0.2
        opts = options_for(combo, amsgrad, grad_scale, extra, seed=99)
        ours = make_tensor(rng, (70001,), combo, amsgrad)
        ref = copies(ours)
        assert run_tp(ours, 3, opts) is False
        run_ref(ref, 3, opts)
        assert_same_bits(ours, ref)


@requires_c
@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_c_threads_on_every_combination(combo, rng):
    # the C kernel (best variant) over two threads' chunks, against the reference
    for amsgrad, grad_scale in itertools.product((False, True), GRAD_SCALES):
        extra = RUNTIME_OPTIONS[8 if amsgrad else 7]
        opts = options_for(combo, amsgrad, grad_scale, extra, seed=31)
        ours = make_tensor(rng, (70001,), combo, amsgrad)
        ref = copies(ours)
        assert run_kernel("c", [ours], 4, opts, [6]) is False
        run_ref(ref, 4, opts, 6)
        assert_same_bits(ours, ref)


def test_list_of_every_combination_is_one_call(rng):
    # Every combination but stochastic rounding (which the public step refuses beside masters)
    # in one call, with sizes that put the threads' chunk borders inside tensors and between
    # them; each tensor equals its own reference step.
    combos = [c for c in COMBOS if c[3] != "sr"]
    shapes = [(i * 37 % 101,) for i in range(len(combos))]
    shapes[0] = shapes[9] = (70001,)  # f32 param with f32 grads and states; bf16 master
    assert combos[9] == (BF16, BF16, BF16, "master")
    states = [make_tensor(rng, s, c, amsgrad=False) for s, c in zip(shapes, combos)]
    refs = [copies(s) for s in states]
    opts = options_for(combos[0], False, 3.0, RUNTIME_OPTIONS[8])
    cols = [list(c) for c in zip(*states)]
    assert tp.adam_step(cols[0], cols[1], cols[2], cols[3], step=5, master_params=cols[5],
                        **{k: opts[k] for k in PUBLIC_KEYS if k in opts}) is False
    rcols = [list(c) for c in zip(*refs)]
    adam_mixed_reference_list(*rcols[:4], None, rcols[5], step=5, **reference_kwargs(opts))
    for ours, ref in zip(states, refs):
        assert_same_bits(ours, ref)


@pytest.mark.parametrize("backend", _backend.available_backends())
def test_kernel_rounds_stochastically_only_the_half_params_without_master(backend, rng):
    # The kernels take the flag and masters together (the public step does not): the flag
    # applies to half params without a master, per tensor.
    combos = [(BF16, BF16, F32, "master"), (BF16, BF16, F32, "sr"), (F16, F32, BF16, "master"),
              (F16, F32, BF16, "sr"), (F32, BF16, BF16, "plain")]
    states = [make_tensor(rng, (301,), c, amsgrad=False) for c in combos]
    refs = [copies(s) for s in states]
    opts = options_for(combos[1], False, None, RUNTIME_OPTIONS[8], seed=77)
    indices = [4, 3, 2, 1, 0]
    assert run_kernel(backend, states, 2, opts, indices) is False
    rcols = [list(c) for c in zip(*refs)]
    adam_mixed_reference_list(*rcols[:4], None, rcols[5], tensor_indices=indices, step=2,
                              **reference_kwargs(opts))
    for ours, ref in zip(states, refs):
        assert_same_bits(ours, ref)


# Special values: every float32 class, each half type's subnormals, and the edges of both
# halves' ranges (read into each buffer's dtype, so the half overflow values become Inf there).
SPECIALS = np.array([
    0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -2.5, 1e-3,
    2.0**-149, 2.0**-126 - 2.0**-149, 2.0**-126,          # float32 subnormals, smallest normal
    2.0**-133, -(2.0**-127),                              # bfloat16 subnormals
    2.0**-24, -(2.0**-14 - 2.0**-24), 2.0**-14, 3e-8,     # float16 subnormals, below them
    65504.0, -np.nextafter(np.float32(65520), np.float32(0)), 65520.0,
    3.3895313892515355e38, -3.3961775292304e38, 3e38,     # bf16 max, bf16 overflow, float32
], dtype=np.float32)

SPECIAL_OPTIONS = [dict(), dict(amsgrad=True, eps=0.0), dict(weight_decay=0.5, lr=100.0),
                   dict(decoupled_weight_decay=True, weight_decay=0.1, maximize=True, betas=(0.2, 0.5))]


def special_state(combo, amsgrad, seed=0):
    """The values over a grid of (grad, exp_avg, exp_avg_sq); param (or master) and
    max_exp_avg_sq drawn from them at random."""
    pd, gd, sd, mode = combo
    k = len(SPECIALS)
    grid = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 3)
    pick = np.random.default_rng(seed).integers(0, k, (2, len(grid)))
    p = SPECIALS[pick[0]]
    with np.errstate(over="ignore"):  # 65520 and beyond overflow the halves
        state = [p.astype(pd), SPECIALS[grid[:, 0]].astype(gd), SPECIALS[grid[:, 1]].astype(sd),
                 SPECIALS[grid[:, 2]].astype(sd), SPECIALS[pick[1]].astype(sd) if amsgrad else None,
                 p.copy() if mode == "master" else None]
    if mode == "master":
        state[0][...] = 7.0
    return state


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_special_values_match_reference(combo):
    for k, extra in enumerate(SPECIAL_OPTIONS):
        opts = options_for(combo, extra.get("amsgrad", False), None, extra, seed=k)
        ours = special_state(combo, opts["amsgrad"], seed=k)
        ref = copies(ours)
        with np.errstate(all="ignore"):
            assert run_tp(ours, 3, opts) is False
            run_ref(ref, 3, opts)
        assert_same_bits(ours, ref, str(extra))
        assert_quiet_nans(ours)


@settings(max_examples=60, deadline=None)
@given(
    combo=st.sampled_from(COMBOS),
    n=st.integers(0, 200),
    step=st.integers(1, 10**6),
    lr=st.floats(0, 1),
    beta1=st.floats(0, 0.999),
    beta2=st.floats(0, 0.9999),
    eps=st.floats(0, 1e-2),
    weight_decay=st.floats(0, 1),
    decoupled=st.booleans(),
    amsgrad=st.booleans(),
    maximize=st.booleans(),
    grad_scale=st.one_of(st.none(), st.floats(1e-3, 1e4)),
    seed=st.integers(0, 2**64 - 1),
    index=st.integers(0, 2**63 - 1),
    data_seed=st.integers(0, 2**32 - 1),
)
def test_property_matches_reference(combo, n, step, lr, beta1, beta2, eps, weight_decay, decoupled,
                                    amsgrad, maximize, grad_scale, seed, index, data_seed):
    rng = np.random.default_rng(data_seed)
    opts = options_for(combo, amsgrad, grad_scale, dict(
        lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay,
        decoupled_weight_decay=decoupled, maximize=maximize), seed=seed)
    ours = make_tensor(rng, (n,), combo, amsgrad, grad_size=rng.choice([1e-3, 1.0, 1e3]))
    ref = copies(ours)
    with np.errstate(all="ignore"):
        assert run_tp(ours, step, opts, index) == run_ref(ref, step, opts, index)
    assert_same_bits(ours, ref)


# --- every C variant against the scalar one ----------------------------------------------------

VARIANT_SIZES = (1, 3, 8, 15, 16, 17, 31, 32, 33, 65, 1001)


@requires_c
@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
@pytest.mark.parametrize("isa", VARIANTS)
def test_each_variant_equals_scalar(isa, combo, rng):
    for amsgrad, grad_scale in itertools.product((False, True), GRAD_SCALES):
        for n in VARIANT_SIZES:
            base = make_tensor(rng, (n,), combo, amsgrad)
            # every option on the longest (vector body and tail), two on the others: AdamW,
            # which has a loop of its own, and one more in turn
            options = RUNTIME_OPTIONS if n == VARIANT_SIZES[-1] else [RUNTIME_OPTIONS[8], RUNTIME_OPTIONS[n % 12]]
            for k, extra in enumerate(options):
                opts = options_for(combo, amsgrad, grad_scale, extra, seed=k)
                scalar, variant = copies(base), copies(base)
                assert run_kernel("c", [scalar], 2, opts, [n], isa="scalar") is False
                assert run_kernel("c", [variant], 2, opts, [n], isa=isa) is False
                assert_same_bits(scalar, variant, f"n={n} {opts}")


# Calls of at least 2^22 elements (csrc/adam/step.c: ADAM_STREAM_MIN) write a master's half
# param with non-temporal stores on whole 64-byte lines after a masked head (AVX-512).
STREAMING_SIZE = (1 << 22) + 45


@pytest.mark.parametrize("combo", [c for c in COMBOS if c[3] == "master"], ids=combo_id)
@pytest.mark.parametrize("isa", [isa for isa in VARIANTS if isa == "avx512"])
def test_avx512_streams_a_large_master_step_exactly(isa, combo, rng):
    """A large offload step, with the param at every alignment class its line can have (a
    view starting 0..31 elements into a 64-byte-aligned buffer), with all threads: the same
    bits as the scalar reference, the lines around each thread's share included."""
    base = make_tensor(rng, (STREAMING_SIZE,), combo, False)
    opts = options_for(combo, False, None, DECAYS["adamw"])
    for offset in (0, 1, 17, 31):
        state = copies(base)
        buffer = np.empty(STREAMING_SIZE + 64, combo[0])
        start = (-buffer.ctypes.data % 64) // combo[0].itemsize + offset
        state[0] = buffer[start:start + STREAMING_SIZE]
        state[0][...] = base[0]
        scalar = copies(state)
        assert run_kernel("c", [state], 2, opts, [STREAMING_SIZE], isa=isa) is False
        assert run_kernel("c", [scalar], 2, opts, [STREAMING_SIZE], isa="scalar") is False
        assert_same_bits(scalar, state, f"param offset {offset}")


@requires_c
@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
@pytest.mark.parametrize("isa", VARIANTS)
def test_each_variant_on_special_values(isa, combo):
    for k, extra in enumerate(SPECIAL_OPTIONS):
        opts = options_for(combo, extra.get("amsgrad", False), None, extra, seed=k)
        scalar = special_state(combo, opts["amsgrad"], seed=k)
        variant = copies(scalar)
        run_kernel("c", [scalar], 3, opts, isa="scalar")
        run_kernel("c", [variant], 3, opts, isa=isa)
        assert_same_bits(scalar, variant, str(extra))


def tiny_state(rng, n, combo, amsgrad, nan_at=None):
    """Finite values, most of them float32 / bfloat16 subnormals or near them, with no NaN
    or Inf (or a single NaN grad at nan_at): the hand-written AVX-512 step rounds vectors
    without any to bfloat16 with vcvtne2ps2bf16, which flushes subnormal input, and takes the
    integer rounding for a vector holding one; a vector with a NaN takes it too, and only the
    step that produced a NaN fixes NaNs (x86_avx512_mixed.c). The grid of special values
    above has a NaN in nearly every vector, so these cases need their own data."""
    pd, gd, sd, mode = combo
    mags = lambda: np.exp2(rng.uniform(-149, -110, n)) * rng.choice([-1.0, 1.0], n)  # noqa: E731
    normal = lambda s: s * rng.standard_normal(n)  # noqa: E731
    mix = lambda tiny, big: np.where(rng.random(n) < 0.8, tiny, big)  # noqa: E731
    p = mix(mags(), normal(1.0)).astype(np.float32)
    g = mix(mags() * 2.0**60, normal(1.0)).astype(np.float32)  # squares to subnormal v
    if nan_at is not None:
        g[nan_at] = np.nan
    state = [p.astype(pd), g.astype(gd), mix(mags(), normal(0.1)).astype(sd),
             np.abs(mix(mags(), normal(0.01))).astype(sd),
             np.abs(mix(mags(), normal(0.01))).astype(sd) if amsgrad else None,
             p.copy() if mode == "master" else None]
    if mode == "master":
        state[0][...] = 7.0
    return state


@requires_c
@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
@pytest.mark.parametrize("isa", VARIANTS)
def test_each_variant_on_subnormals_and_single_nans(isa, combo, rng):
    for amsgrad in (False, True):
        for nan_at in (None, 37, 130):
            for k, extra in enumerate([RUNTIME_OPTIONS[8], dict(lr=1e-30, eps=0.0), dict(lr=1e-38)]):
                opts = options_for(combo, amsgrad, None, extra, seed=k)
                scalar = tiny_state(rng, 161, combo, amsgrad, nan_at)
                variant = copies(scalar)
                with np.errstate(all="ignore"):
                    run_kernel("c", [scalar], 3, opts, isa="scalar")
                    run_kernel("c", [variant], 3, opts, isa=isa)
                assert_same_bits(scalar, variant, f"nan_at={nan_at} {extra}")
                assert_quiet_nans(variant)


def native_bf16_disabled():
    return os.environ.get("TENSORPRESS_NO_AVX512_BF16", "") not in ("", "0")


@requires_c
def test_the_native_bf16_conversion_follows_the_environment():
    from tensorpress._native import lib

    if native_bf16_disabled():
        assert lib.tp_cpu_has_avx512_bf16() == 0


@requires_c
@pytest.mark.skipif("avx512" not in VARIANTS or native_bf16_disabled(), reason="no AVX-512 variant here, "
                    "or this run already checks it without AVX512_BF16")
def test_avx512_without_its_bf16_conversion_equals_scalar():
    """The AVX-512 variant's integer bf16 rounding, which CPUs without AVX512_BF16 (Skylake-X,
    Ice Lake) run, and this one only for vectors holding a NaN or a subnormal: the variant
    tests of the bf16 combinations again, in a process that has the instruction switched off."""
    from tensorpress._native import lib

    if not lib.tp_cpu_has_avx512_bf16():
        pytest.skip("this CPU has no AVX512_BF16: the variant tests above run the integer rounding")
    env = dict(os.environ, TENSORPRESS_NO_AVX512_BF16="1", TENSORPRESS_BACKEND="c")
    selection = "native_bf16 or (avx512 and bf16 and (each_variant_equals_scalar or each_variant_on))"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", selection],
                          capture_output=True, text=True, timeout=900, env=env, cwd=os.path.dirname(__file__))
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


# --- C against Numba ----------------------------------------------------------------------------

@requires_c
@with_numba
@pytest.mark.parametrize("combo", [c for c in COMBOS if c[3] == "sr"], ids=combo_id)
def test_c_and_numba_agree_on_stochastic_rounding(combo, rng):
    # (every other combination meets both backends through the reference)
    opts = options_for(combo, False, None, RUNTIME_OPTIONS[1], seed=2**63 + 5)
    c_states = [make_tensor(rng, (n,), combo, False) for n in (5, 1000)]
    nb_states = [copies(s) for s in c_states]
    for step in (1, 2):
        run_kernel("c", c_states, step, opts, [4, 2**40])
        run_kernel("numba", nb_states, step, opts, [4, 2**40])
    for c, nb in zip(c_states, nb_states):
        assert_same_bits(c, nb)
    c_special, nb_special = special_state(combo, False), special_state(combo, False)
    with np.errstate(all="ignore"):
        run_kernel("c", [c_special], 3, opts)
        run_kernel("numba", [nb_special], 3, opts)
    assert_same_bits(c_special, nb_special)


# --- master weights -----------------------------------------------------------------------------

@pytest.mark.parametrize("grad_scale", GRAD_SCALES, ids=lambda s: f"scale={s}")
@pytest.mark.parametrize("amsgrad", [False, True], ids=lambda a: f"amsgrad={a}")
@pytest.mark.parametrize("combo", [c for c in COMBOS if c[3] == "master"], ids=combo_id)
def test_master_is_the_float32_step_and_param_its_rounding(combo, amsgrad, grad_scale, rng):
    pd, gd, sd, _ = combo
    for extra in (RUNTIME_OPTIONS[0], RUNTIME_OPTIONS[8], RUNTIME_OPTIONS[7]):
        opts = options_for(combo, amsgrad, grad_scale, extra)
        ours = make_tensor(rng, (777,), combo, amsgrad)
        ours[0][...] = np.nan  # the param is only written
        # the all-float32 step on the master, with the grads and states converted (exactly)
        f32 = [ours[5].copy()] + [None if a is None else a.astype(np.float32) for a in ours[1:5]] + [None]
        for step in (1, 2, 3):
            g = rng.standard_normal(777).astype(gd)
            ours[1][...] = g
            f32[1][...] = g.astype(np.float32)
            assert run_tp(ours, step, opts) is False
            assert run_tp(f32, step, dict(opts, stochastic_rounding=False)) is False
            np.testing.assert_array_equal(_bits(ours[5]), _bits(f32[0]))
            np.testing.assert_array_equal(_bits(ours[0]), _bits(ours[5].astype(pd)))  # nearest even
            # the states are the float32 step's, rounded once
            for a, b in zip(ours[2:5], f32[2:5]):
                if a is not None:
                    np.testing.assert_array_equal(_bits(a), _bits(b.astype(sd)))
            if sd == BF16:  # the float32 run kept unrounded states: continue it from ours
                for a, b in zip(ours[2:5], f32[2:5]):
                    if a is not None:
                        b[...] = a.astype(np.float32)


# --- stochastic rounding ------------------------------------------------------------------------

def uniform_sr_state(combo, n, value, lr, grad=1.0):
    """n elements whose every update is exactly -lr * sign(grad): beta1 = beta2 = 0 (so the
    bias corrections are 1 at every step), eps = 0, exp_avg = grad, exp_avg_sq = grad**2."""
    pd, gd, sd, _ = combo
    state = [np.full(n, value, pd), np.full(n, grad, gd), np.zeros(n, sd), np.zeros(n, sd), None, None]
    opts = dict(lr=lr, betas=(0.0, 0.0), eps=0.0, amsgrad=False, stochastic_rounding=True)
    return state, opts


def float32_value(combo, value, lr, grad=1.0):
    """The float32 result of uniform_sr_state's update: the master's under a float32 master."""
    state, opts = uniform_sr_state(combo, 1, value, lr, grad)
    state[5] = state[0].astype(np.float32)
    adam_mixed_reference(*state, step=1, **reference_kwargs(dict(opts, stochastic_rounding=False)))
    return state[5][0]


def neighbours(x, dtype):
    """The bits of x's two neighbours in dtype, toward zero and away from it, and x's fraction
    of the gap between them (from the one toward zero)."""
    nearest = np.array([x], np.float32).astype(dtype)
    bits = int(_bits(nearest)[0])
    lo, hi = (bits, bits + 1) if abs(float(nearest[0])) <= abs(float(x)) else (bits - 1, bits)
    lo_value, hi_value = (float(np.array([b], np.uint16).view(dtype)[0]) for b in (lo, hi))
    return lo, hi, lo_value, hi_value, (float(x) - lo_value) / (hi_value - lo_value)


# (param value, lr, grad): the float32 result lies between two half neighbours.
SR_CASES = {
    BF16: [(1.0, 1e-3, 1.0),                  # 0.999: 0.74 of the gap above 1 - 2^-8
           (1.5, 2e-5, 1.0),                  # 0.0026 of the gap below 1.5: far below half an ulp
           (-3.0, 3e-3, -1.0),                # negative
           (5 * 2.0**-133, 0.3 * 2.0**-133, 1.0)],  # bfloat16 subnormals
    F16: [(1.0, 1e-4, 1.0),                   # 0.9999: 0.80 of the gap
          (-2.0, 1e-5, -1.0),                 # negative: 0.99 of the gap, toward -2
          (5 * 2.0**-24, 0.3 * 2.0**-24, 1.0),  # float16 subnormals: 4.7 * 2^-24
          (0.0, 0.3 * 2.0**-24, -1.0)],       # below the smallest subnormal: 0.3 * 2^-24
}
SR_N = 1 << 20


def chi2_z(counts, totals):
    """A z-score for the homogeneity of round-up rates across groups (Wilson-Hilferty)."""
    rate = counts.sum() / totals.sum()
    expected = totals * rate
    chi2 = float((((counts - expected) ** 2) / (expected * (1 - rate))).sum())
    df = len(counts) - 1
    return ((chi2 / df) ** (1 / 3) - (1 - 2 / (9 * df))) / math.sqrt(2 / (9 * df))


@pytest.mark.parametrize("combo", [SR_BF16, SR_F16], ids=combo_id)
def test_stochastic_rounding_is_unbiased(combo):
    pd = combo[0]
    for value, lr, grad in SR_CASES[pd]:
        x = float32_value(combo, value, lr, grad)
        lo, hi, lo_value, hi_value, q = neighbours(x, pd)
        assert 0.0 < q < 1.0, (x, lo_value, hi_value)
        state, opts = uniform_sr_state(combo, SR_N, value, lr, grad)
        ref = copies(state)
        run_tp(state, 1, dict(opts, seed=12345))
        run_ref(ref, 1, dict(opts, seed=12345))
        assert_same_bits(state, ref)
        out = state[0]
        up = _bits(out) == hi
        assert (up | (_bits(out) == lo)).all(), "a value that is no neighbour of x"
        # the mean is x (within 5 standard errors); the round-up count is binomial(N, q)
        gap = hi_value - lo_value
        mean = out.astype(np.float64).mean()
        se = abs(gap) * math.sqrt(q * (1 - q) / SR_N)
        assert abs(mean - float(x)) < 5 * se + abs(gap) * 2.0**-24, (value, float(x), mean, se)
        k = int(up.sum())
        assert abs(k - SR_N * q) < 5 * math.sqrt(SR_N * q * (1 - q)), (value, k, SR_N * q)
        # the same rate in 64 blocks of consecutive elements and in 64 residues of the index
        for groups in (up.reshape(64, -1), up.reshape(-1, 64).T):
            z = chi2_z(groups.sum(1).astype(np.float64), np.full(64, groups.shape[1], np.float64))
            assert abs(z) < 5, (value, z)


def test_float16_stochastic_rounding_can_round_to_inf():
    # 65514 lies 10/32 of the way from 65504 to 65536, which is Inf in float16: the docs' rule
    # "s | 0x7c00 (Inf) if c >= 0x47800000".
    combo = SR_F16
    x = float32_value(combo, 65504.0, 10.0, -1.0)
    assert x == 65514.0
    state, opts = uniform_sr_state(combo, SR_N, 65504.0, 10.0, -1.0)
    ref = copies(state)
    run_tp(state, 1, dict(opts, seed=3))
    run_ref(ref, 1, dict(opts, seed=3))
    assert_same_bits(state, ref)
    out = state[0].astype(np.float64)
    assert set(np.unique(out)) == {65504.0, np.inf}
    q = 10 / 32
    k = int(np.isinf(out).sum())
    assert abs(k - SR_N * q) < 5 * math.sqrt(SR_N * q * (1 - q))


def sr_boundary_cases(pd):
    """(param, lr, expected bits, seed): a float32 result x = param + lr (exact) placed right at
    the carry of the docs' formulas for the random bits r of element 0 under `seed`, and one
    step below it, with the bits the formulas give."""
    cases = []
    for seed in range(64):
        r = int(sr_bits(seed, 1, 0, 1)[0])
        if pd == BF16 and (r >> 16) >= 2:
            # (b + (r >> 16)) >> 16 with b = 0x3f800000 + L: carries from L = 0x10000 - (r >> 16)
            low = 0x10000 - (r >> 16)
            cases += [(1.0, low * 2.0**-23, 0x3F81, seed), (1.0, (low - 1) * 2.0**-23, 0x3F80, seed)]
        elif pd == F16 and (r >> 19) >= 2 and not any(c[2] == 0x3C01 for c in cases):
            # normal: c = a + (r >> 19) carries into bit 13 from L = 0x2000 - (r >> 19)
            low = 0x2000 - (r >> 19)
            cases += [(1.0, low * 2.0**-23, 0x3C01, seed), (1.0, (low - 1) * 2.0**-23, 0x3C00, seed)]
        elif pd == F16 and 2 <= (r >> 8) < 2**24 - 2 and (r >> 8) % 2 == 0:
            # below 2^-14: n + (u < f) with u = (r >> 8) * 2^-24; f == u is not u < f
            k = r >> 8
            cases += [(0.0, k * 2.0**-48, 0x0000, seed), (0.0, (k + 1) * 2.0**-48, 0x0001, seed),
                      (2.0**-24, k * 2.0**-48, 0x0001, seed), (2.0**-24, (k + 2) * 2.0**-48, 0x0002, seed)]
        if len(cases) >= 8:
            return cases
    raise AssertionError("no seed gave usable bits")


@pytest.mark.parametrize("combo", [SR_BF16, SR_F16], ids=combo_id)
def test_stochastic_rounding_at_the_carry(combo):
    # Off-by-one errors in the formulas change one element in 2^16 (bfloat16), 2^13 (float16)
    # or 2^24 (float16 below 2^-14): these cases sit on the boundary itself.
    pd = combo[0]
    for value, lr, expected, seed in sr_boundary_cases(pd):
        x = float32_value(combo, value, lr, -1.0)
        assert float(x) == value + lr  # exact
        state, opts = uniform_sr_state(combo, 1, value, lr, -1.0)
        ref = copies(state)
        run_tp(state, 1, dict(opts, seed=seed))
        run_ref(ref, 1, dict(opts, seed=seed))
        assert int(_bits(state[0])[0]) == int(_bits(ref[0])[0]) == expected, (value, lr, seed)


def sr_output(combo, n=4096, step=1, seed=7, indices=None, count=1, value=1.0, shape=None):
    """The params written by one call over `count` equal tensors of n elements whose float32
    result lies halfway between two neighbours (1 - 2^-9 for bfloat16, 1 - 2^-12 for float16)."""
    lr = 2.0**-9 if combo[0] == BF16 else 2.0**-12
    states = [uniform_sr_state(combo, n, value, lr)[0] for _ in range(count)]
    if shape is not None:
        states = [[None if a is None else a.reshape(shape) for a in s] for s in states]
    opts = dict(uniform_sr_state(combo, 1, value, lr)[1], seed=seed)
    cols = [list(c) for c in zip(*states)]
    assert tp.adam_step(cols[0], cols[1], cols[2], cols[3], step=step, tensor_indices=indices,
                        **{k: opts[k] for k in PUBLIC_KEYS if k in opts}) is False
    refs = [uniform_sr_state(combo, n, value, lr)[0] for _ in range(count)]
    rcols = [list(c) for c in zip(*refs)]
    adam_mixed_reference_list(*rcols[:4], tensor_indices=indices, step=step, **reference_kwargs(opts))
    for ours, ref in zip(states, refs):
        np.testing.assert_array_equal(_bits(ours[0]).reshape(-1), _bits(ref[0]))
    return [_bits(s[0]).reshape(-1).copy() for s in states]


def differ(a, b):
    """More than a quarter of the elements differ (half of them do for independent bits at
    probability 1/2)."""
    return np.count_nonzero(a != b) > a.size // 4


@pytest.mark.parametrize("combo", [SR_BF16, SR_F16], ids=combo_id)
def test_stochastic_bits_depend_on_seed_step_tensor_and_element(combo):
    (base,) = sr_output(combo)
    assert 0.3 < np.mean(base == base.max()) < 0.7  # element index: both neighbours, half each
    assert (sr_output(combo)[0] == base).all()  # a pure function
    for seed in (8, 2**63 + 7, 2**64 - 1):
        assert differ(sr_output(combo, seed=seed)[0], base), seed
    assert differ(sr_output(combo, seed=2**64 - 1)[0], sr_output(combo, seed=2**63 - 1)[0])
    assert differ(sr_output(combo, step=2)[0], base)  # the float32 values are the same
    assert differ(sr_output(combo, step=2**40)[0], sr_output(combo, step=2**40 + 1)[0])
    # the tensor index: a tensor's position in the call unless tensor_indices gives it
    first, second = sr_output(combo, count=2)
    assert (first == base).all() and differ(first, second)
    assert (sr_output(combo, indices=[1])[0] == second).all()
    same = sr_output(combo, count=2, indices=[2**63 - 1, 2**63 - 1])
    assert (same[0] == same[1]).all() and differ(same[0], base)
    assert differ(sr_output(combo, indices=[2**32])[0], base)
    # the element index counts in C order from 0, whatever the shape or size
    assert (sr_output(combo, shape=(16, 8, 32))[0] == base).all()
    assert (sr_output(combo, n=1000)[0] == base[:1000]).all()


def test_stochastic_bits_do_not_depend_on_threads_or_backend(rng):
    # a list (chunks of the threads cross its tensors' borders), 1.2M elements in the first
    combos = [SR_BF16, SR_F16, (F32, F16, F32, "plain"), SR_BF16]
    shapes = [(1200001,), (300001,), (5,), (77,)]
    base = [make_tensor(rng, s, c, False) for s, c in zip(shapes, combos)]
    opts = options_for(SR_BF16, False, None, RUNTIME_OPTIONS[8], seed=2**64 - 3)
    indices = [11, 0, 5, 2**62]
    results = {}
    before = tp.get_num_threads()
    try:
        for n_threads in (1, 2):
            tp.set_num_threads(n_threads)
            state = [copies(s) for s in base]
            cols = [list(c) for c in zip(*state)]
            tp.adam_step(cols[0], cols[1], cols[2], cols[3], step=9, tensor_indices=indices,
                         **{k: opts[k] for k in PUBLIC_KEYS if k in opts})
            results[n_threads] = state
    finally:
        tp.set_num_threads(before)
    for a, b in zip(results[1], results[2]):
        assert_same_bits(a, b)
    ref = [copies(s) for s in base]
    rcols = [list(c) for c in zip(*ref)]
    adam_mixed_reference_list(*rcols[:4], tensor_indices=indices, step=9, **reference_kwargs(opts))
    for a, b in zip(results[1], ref):
        assert_same_bits(a, b)
    for backend in ("c", "numba"):
        if backend in _backend.available_backends():
            state = [copies(s) for s in base]
            run_kernel(backend, state, 9, opts, indices)
            for a, b in zip(state, ref):
                assert_same_bits(a, b, backend)


@pytest.mark.parametrize("combo", [c for c in COMBOS if c[0] == F32][:3], ids=combo_id)
def test_stochastic_rounding_leaves_float32_params_alone(combo, rng):
    ours = make_tensor(rng, (301,), combo, False)
    plain = copies(ours)
    run_tp(ours, 2, options_for(combo, False, None, seed=5) | {"stochastic_rounding": True})
    run_tp(plain, 2, options_for(combo, False, None, seed=5))
    assert_same_bits(ours, plain)


# --- found_inf ----------------------------------------------------------------------------------

def _f32(x):
    return float(np.float32(x))


F16_MAX, BF16_MAX = 65504.0, float(np.array([0x7F7F], np.uint16).view(BF16)[0])
# (grad dtype, grad value, grad_scale, found): a half grad is found when its float32 quotient
# rounds to Inf in its own dtype.
FOUND_INF_CASES = [
    (F16, 60000.0, 0.5, True),
    (F16, -32760.0, 0.5, True),                  # -65520: the tie rounds to the even Inf
    (F16, 32752.0, 0.5, False),                  # 65504: the largest finite
    (F16, F16_MAX, _f32(F16_MAX / 65519.0), False),   # ~65519 rounds down to 65504
    (F16, F16_MAX, _f32(F16_MAX / 65520.5), True),
    (F16, np.inf, 2.0, True),
    (F16, np.nan, 2.0, True),
    (F16, 1.0, 3.0, False),
    (BF16, BF16_MAX, 0.998, True),               # 3.3963e38: finite in float32, Inf in bfloat16
    (BF16, -BF16_MAX, 0.9999, False),
    (BF16, 1e38, 0.25, True),                    # 4e38: Inf in float32
    (BF16, -np.inf, 2.0, True),
    (BF16, np.nan, 0.5, True),
    (BF16, 1.0, 3.0, False),
]


def found_inf_combos(gd):
    return [c for c in COMBOS if c[1] == gd]


@pytest.mark.parametrize("gd, value, scale, found", FOUND_INF_CASES)
def test_half_grad_found_inf(gd, value, scale, found, rng):
    g = np.array([value], np.float32).astype(gd)
    assert grad_overflows(g, scale) is found  # the reference's rule, on the case's own claim
    for combo in found_inf_combos(gd):
        # the suspect grad in the second of three tensors (below the Numba threads' threshold:
        # each parallel form is compiled anew in every process)
        states = [make_tensor(rng, (n,), combo, True) for n in (9, 20001, 3)]
        states[1][1][12345] = g[0]
        before = [copies(s) for s in states]
        refs = [copies(s) for s in states]
        opts = options_for(combo, True, scale, seed=1)
        cols = [list(c) for c in zip(*states)]
        masters = cols[5] if combo[3] == "master" else None
        got = tp.adam_step(cols[0], cols[1], cols[2], cols[3], step=2, max_exp_avg_sqs=cols[4],
                           master_params=masters, **{k: opts[k] for k in PUBLIC_KEYS if k in opts})
        assert got is found, combo_id(combo)
        if found:
            for s, b in zip(states, before):
                assert_unchanged(s, b)
        else:
            rcols = [list(c) for c in zip(*refs)]
            adam_mixed_reference_list(*rcols, step=2, **reference_kwargs(opts))
            for s, r in zip(states, refs):
                assert_same_bits(s, r)


@pytest.mark.parametrize("combo", [c for c in COMBOS if c[0] in HALVES and c[1] == F32], ids=combo_id)
def test_float32_grads_of_half_params_have_no_half_limit(combo, rng):
    # 1e5 / 0.5 = 2e5 and 3e38 / 0.998 are finite float32 quotients beyond float16's and
    # bfloat16's range: a float32 grad is only refused when its quotient is NaN or Inf.
    for value, scale, found in ((1e5, 0.5, False), (3.3895e38, 0.998, False), (3e38, 0.5, True)):
        ours = make_tensor(rng, (50,), combo, False)
        ours[1][7] = value
        ref = copies(ours)
        before = copies(ours)
        opts = options_for(combo, False, scale, seed=4)
        with np.errstate(all="ignore"):
            assert run_tp(ours, 1, opts) is found
            assert run_ref(ref, 1, opts) is found
        assert_same_bits(ours, before if found else ref)


def test_without_grad_scale_half_nonfinite_grads_propagate(rng):
    for combo in [(BF16, BF16, F32, "plain"), (F16, F16, BF16, "sr"), (F32, F16, F32, "plain")]:
        ours = make_tensor(rng, (8,), combo, False)
        ours[1][2], ours[1][5] = np.inf, np.nan
        ref = copies(ours)
        opts = options_for(combo, False, None)
        with np.errstate(all="ignore"):
            assert run_tp(ours, 1, opts) is False
            run_ref(ref, 1, opts)
        assert_same_bits(ours, ref)
        assert np.isnan(ours[0].astype(np.float32)[[2, 5]]).all()


# --- bad dtypes and arguments -------------------------------------------------------------------

I32 = np.dtype(np.int32)
# (why, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq or None, master or None, the role named)
BAD_DTYPES = [
    ("float16 states", F32, F32, F16, F16, None, None, "exp_avgs"),
    ("float16 states of a half param", BF16, BF16, F16, F16, None, None, "exp_avgs"),
    ("float16 exp_avg_sq", F16, F16, F32, F16, None, None, "exp_avg_sqs"),
    ("mixed states", F32, F32, F32, BF16, None, None, "exp_avg_sqs"),
    ("mixed states of a half param", F16, F16, BF16, F32, None, None, "exp_avg_sqs"),
    ("mixed max_exp_avg_sq", BF16, BF16, BF16, BF16, F32, None, "max_exp_avg_sqs"),
    ("float16 max_exp_avg_sq", F32, F32, F32, F32, F16, None, "max_exp_avg_sqs"),
    ("float64 param, float32 grad", F64, F32, F64, F64, None, None, "grads"),
    ("float64 param, bfloat16 grad", F64, BF16, F64, F64, None, None, "grads"),
    ("float64 param, float32 states", F64, F64, F32, F32, None, None, "exp_avgs"),
    ("float64 param, bfloat16 states", F64, F64, BF16, BF16, None, None, "exp_avgs"),
    ("float64 param, a master", F64, F64, F64, F64, None, F32, "master_params"),
    ("float32 param, float64 grad", F32, F64, F32, F32, None, None, "grads"),
    ("float32 param, float64 states", F32, F32, F64, F64, None, None, "exp_avgs"),
    ("bfloat16 param, float16 grad", BF16, F16, F32, F32, None, None, "grads"),
    ("float16 param, bfloat16 grad", F16, BF16, F32, F32, None, None, "grads"),
    ("half param, float64 grad", BF16, F64, F32, F32, None, None, "grads"),
    ("master of a float32 param", F32, F32, F32, F32, None, F32, "master_params"),
    ("bfloat16 master", BF16, BF16, F32, F32, None, BF16, "master_params"),
    ("float16 master", F16, F16, F32, F32, None, F16, "master_params"),
    ("float64 master", F16, F32, BF16, BF16, None, F64, "master_params"),
    ("int32 param", I32, F32, F32, F32, None, None, "params"),
]


def bad_lists(rng, case):
    """A valid bfloat16 tensor (with a master when the case has one) and the bad one after it."""
    _, pd, gd, md, vd, xd, masterd, _ = case
    good = [rng.standard_normal(6).astype(d) for d in (BF16, BF16, F32, F32)]
    bad = [rng.standard_normal(6).astype(d) for d in (pd, gd, md, vd)]
    lists = [[a, b] for a, b in zip(good, bad)]
    lists.append(None if xd is None else [np.abs(good[3]), np.abs(rng.standard_normal(6)).astype(xd)])
    lists.append(None if masterd is None else [np.zeros(6, np.float32), rng.standard_normal(6).astype(masterd)])
    return lists


def _all_arrays(lists):
    return [a for col in lists if col is not None for a in col if a is not None]


@pytest.mark.parametrize("case", BAD_DTYPES, ids=lambda c: c[0])
def test_bad_dtype_combinations_are_refused(case, rng):
    role = case[-1]
    lists = bad_lists(rng, case)
    arrays = _all_arrays(lists)
    before = [a.copy() for a in arrays]
    named = rf"{role}\[1\]" + ("" if role == "params" else r".*params\[1\]")
    amsgrad = lists[4] is not None
    with pytest.raises(DTypeError, match=named):
        tp.adam_step(*lists[:4], step=1, amsgrad=amsgrad, max_exp_avg_sqs=lists[4],
                     master_params=lists[5], grad_scale=2.0)
    flags = (_consts.ADAM_AMSGRAD if amsgrad else 0) | _consts.ADAM_GRAD_SCALE
    for backend in _backend.available_backends():
        with pytest.raises(DTypeError, match=named):
            _backend.kernels_of(backend, "adam").adam_step(
                tuple(None if c is None else tuple(c) for c in lists), 1, 1e-3, 0.9, 0.999, 1e-8,
                0.0, 2.0, flags)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(_bits(a), _bits(b))


def sr_lists(rng):
    return [[rng.standard_normal(6).astype(d) for _ in range(2)] for d in (BF16, BF16, F32, F32)]


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"master_params": "masters"}, InvalidArgumentError, "stochastic_rounding"),
    ({"seed": -1}, InvalidArgumentError, "seed"),
    ({"seed": 2**64}, InvalidArgumentError, "seed"),
    ({"seed": 1.5}, DTypeError, "seed"),
    ({"seed": "3"}, DTypeError, "seed"),
    ({"seed": True}, DTypeError, "seed"),
    ({"seed": None}, DTypeError, "seed"),
    ({"tensor_indices": [0]}, InvalidArgumentError, "tensor_indices"),
    ({"tensor_indices": [0, 1, 2]}, InvalidArgumentError, "tensor_indices"),
    ({"tensor_indices": [-1, 0]}, InvalidArgumentError, "tensor_indices"),
    ({"tensor_indices": [0, 2**63]}, InvalidArgumentError, "tensor_indices"),
    ({"tensor_indices": [0, 1.5]}, (DTypeError, InvalidArgumentError), "tensor_indices"),
    ({"tensor_indices": [0, None]}, (DTypeError, InvalidArgumentError), "tensor_indices"),
    ({"tensor_indices": 5}, (DTypeError, InvalidArgumentError), "tensor_indices"),
    ({"stochastic_rounding": "yes"}, InvalidArgumentError, "stochastic_rounding"),
    ({"stochastic_rounding": 1}, InvalidArgumentError, "stochastic_rounding"),
], ids=lambda x: repr(x)[:40])
def test_bad_stochastic_rounding_arguments_are_refused(kwargs, exc, match, rng):
    lists = sr_lists(rng)
    kwargs = dict(kwargs)
    if kwargs.get("master_params") == "masters":
        kwargs["master_params"] = [lists[0][0].astype(np.float32), None]
    kwargs.setdefault("stochastic_rounding", True)
    arrays = _all_arrays(lists) + list(filter(lambda a: a is not None, kwargs.get("master_params") or []))
    before = [a.copy() for a in arrays]
    with pytest.raises(exc, match=match):
        tp.adam_step(*lists, step=1, **kwargs)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(_bits(a), _bits(b))


@pytest.mark.parametrize("seed", [0.0, False, np.float64(0)], ids=repr)
def test_a_zero_seed_that_is_not_an_int_is_refused(seed, rng):
    lists = sr_lists(rng)
    with pytest.raises(DTypeError, match="seed"):
        tp.adam_step(*lists, step=1, stochastic_rounding=True, seed=seed)


def test_good_edge_arguments_are_taken(rng):
    # the largest seed and index, NumPy integers, a tensor index sequence of NumPy ints
    for seed, indices in ((2**64 - 1, [2**63 - 1, 0]), (np.uint64(2**64 - 1), np.array([3, 3])),
                          (np.int64(5), (np.int32(1), np.int64(2**40)))):
        lists = sr_lists(rng)
        refs = [[a.copy() for a in col] for col in lists]
        assert tp.adam_step(*lists, step=3, stochastic_rounding=True, seed=seed, tensor_indices=indices) is False
        adam_mixed_reference_list(*refs, step=3, stochastic_rounding=True, seed=int(seed),
                                  tensor_indices=[int(i) for i in indices])
        for a, b in zip(_all_arrays(lists), _all_arrays(refs)):
            np.testing.assert_array_equal(_bits(a), _bits(b))


def test_bad_master_arrays_are_refused(rng):
    def fresh():
        p = rng.standard_normal(8).astype(BF16)
        return [p, p.copy(), np.zeros(8, np.float32), np.zeros(8, np.float32)], rng.standard_normal(8).astype(np.float32)

    (p, g, m, v), master = fresh()
    cases = [
        (dict(master_params=master[:4]), InvalidArgumentError, r"master_params\[0\].*shape"),
        (dict(master_params=[master, master.copy()]), InvalidArgumentError, "master_params has 2"),
        (dict(master_params=[m]), InvalidArgumentError, "overlaps"),
        (dict(master_params=master.astype(np.float64)), DTypeError, r"master_params\[0\]"),
        (dict(master_params=master[::-1]), InvalidArgumentError, "contiguous"),
        (dict(master_params=[master.tolist()]), DTypeError, "ndarray"),
    ]
    ro = master.copy()
    ro.flags.writeable = False
    cases.append((dict(master_params=ro), InvalidArgumentError, "read-only"))
    arrays = [p, g, m, v, master]
    before = [a.copy() for a in arrays]
    for kwargs, exc, match in cases:
        params = [p] if isinstance(kwargs["master_params"], list) else p
        args = (params, g, m, v) if params is p else ([p], [g], [m], [v])
        with pytest.raises(exc, match=match):
            tp.adam_step(*args, step=1, **kwargs)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(_bits(a), _bits(b))


# --- tp.Adam / tp.AdamW -------------------------------------------------------------------------

def class_params(rng, dtypes=(BF16, F16, F32), shapes=((5, 3), (40,), (7,))):
    return [rng.standard_normal(s).astype(d) for s, d in zip(shapes, dtypes)]


def class_reference(params, state_dtype=None, master=False):
    """Per param: [param, None, exp_avg, exp_avg_sq, None, master or None] as the classes
    start them (states zero, of the docs' default dtypes; masters the params in float32)."""
    out = []
    for p in params:
        sd = state_dtype or (BF16 if p.dtype == BF16 else F32)
        out.append([p.copy(), None, np.zeros(p.shape, sd), np.zeros(p.shape, sd), None,
                    p.astype(np.float32) if master and p.dtype in HALVES else None])
    return out


def class_reference_step(refs, grads, steps, **options):
    """One optimizer step on the references: each param with a grad at its own step count and
    its optimizer index as its stochastic-rounding index."""
    for i, (ref, g) in enumerate(zip(refs, grads)):
        if g is not None:
            steps[i] += 1
            ref[1] = g
            adam_mixed_reference(*ref, step=steps[i], tensor_index=i, **options)


def assert_class_state(opt, refs):
    for i, (p, ref) in enumerate(zip(opt.params, refs)):
        np.testing.assert_array_equal(_bits(p), _bits(ref[0]))
        assert opt._exp_avgs[i].dtype == ref[2].dtype
        np.testing.assert_array_equal(_bits(opt._exp_avgs[i]), _bits(ref[2]))
        np.testing.assert_array_equal(_bits(opt._exp_avg_sqs[i]), _bits(ref[3]))


@pytest.mark.parametrize("state_dtype", [None, np.float32, BF16], ids=str)
def test_class_state_dtype(state_dtype, rng):
    params = class_params(rng)
    refs = class_reference(params, None if state_dtype is None else np.dtype(state_dtype))
    opt = tp.Adam(params, lr=1e-2, weight_decay=0.05, state_dtype=state_dtype)
    steps = [0, 0, 0]
    for _ in range(4):
        grads = [rng.standard_normal(p.shape).astype(p.dtype) for p in params]
        assert opt.step(grads) is False
        class_reference_step(refs, grads, steps, lr=1e-2, weight_decay=0.05)
    assert_class_state(opt, refs)
    with pytest.raises(DTypeError, match="state_dtype"):
        tp.Adam(params, state_dtype=np.float16)


def test_class_master_weights_and_state_dict_round_trip(rng):
    params = class_params(rng)
    refs = class_reference(params, master=True)
    opt = tp.AdamW(params, lr=1e-2, amsgrad=False, master_weights=True)
    steps = [0, 0, 0]
    options = dict(lr=1e-2, weight_decay=1e-2, decoupled=True)
    for _ in range(3):
        grads = [rng.standard_normal(p.shape).astype(p.dtype) for p in params]
        assert opt.step(grads) is False
        class_reference_step(refs, grads, steps, **options)
    assert_class_state(opt, refs)
    saved = opt.state_dict()
    assert [("master_param" in saved["state"][i]) for i in range(3)] == [True, True, False]
    for i in (0, 1):
        np.testing.assert_array_equal(_bits(saved["state"][i]["master_param"]), _bits(refs[i][5]))
        np.testing.assert_array_equal(_bits(params[i]), _bits(refs[i][5].astype(params[i].dtype)))
    # a clone over other arrays continues bit for bit: its params are written from the masters
    clone_params = [np.zeros_like(p) for p in params]
    clone_params[2][...] = params[2]  # a float32 param has no master: it is read
    clone = tp.AdamW(clone_params, lr=0.5, master_weights=True)
    clone.load_state_dict(saved)
    for _ in range(2):
        grads = [rng.standard_normal(p.shape).astype(p.dtype) for p in params]
        opt.step(grads)
        clone.step([g.copy() for g in grads])
    for a, b in zip(params, clone_params):
        np.testing.assert_array_equal(_bits(a), _bits(b))
    # a state_dict without the masters, or with them in another dtype, is refused whole
    broken = clone.state_dict()
    del broken["state"][1]["master_param"]
    with pytest.raises(InvalidArgumentError, match="master_param"):
        clone.load_state_dict(broken)
    broken = clone.state_dict()
    broken["state"][0]["master_param"] = broken["state"][0]["master_param"].astype(np.float64)
    with pytest.raises(InvalidArgumentError, match="master_param"):
        clone.load_state_dict(broken)


def test_class_stochastic_rounding_keys_each_param_by_its_index(rng):
    params = class_params(rng, dtypes=(BF16, F16, BF16), shapes=((300,), (7, 9), (64,)))
    refs = class_reference(params)
    opt = tp.Adam(params, lr=1e-3, stochastic_rounding=True, seed=2**64 - 2)
    options = dict(lr=1e-3, stochastic_rounding=True, seed=2**64 - 2)
    steps = [0, 0, 0]
    # None grads make the calls hold other subsets, and the step counts differ (several calls)
    for skip in (0, None, 2, 1, None):
        grads = [None if i == skip else rng.standard_normal(p.shape).astype(p.dtype)
                 for i, p in enumerate(params)]
        assert opt.step(grads) is False
        class_reference_step(refs, grads, steps, **options)
        assert_class_state(opt, refs)
    saved = opt.state_dict()
    clone_params = [p.copy() for p in params]
    clone = tp.Adam(clone_params, lr=0.1, stochastic_rounding=True, seed=2**64 - 2)
    clone.load_state_dict(saved)
    grads = [rng.standard_normal(p.shape).astype(p.dtype) for p in params]
    opt.step(grads)
    clone.step([g.copy() for g in grads])
    for a, b in zip(params, clone_params):
        np.testing.assert_array_equal(_bits(a), _bits(b))
    with pytest.raises(InvalidArgumentError, match="stochastic_rounding"):
        tp.Adam(params, master_weights=True, stochastic_rounding=True)
    with pytest.raises(InvalidArgumentError, match="seed"):
        tp.Adam(params, stochastic_rounding=True, seed=-1)


@pytest.mark.parametrize("value, scale", [(60000.0, 0.915755), (0.0, 1e-8)])
def test_class_found_inf_over_several_calls_is_adam_steps_rule(value, scale):
    params = [np.ones(4, np.float16), np.ones(4, np.float16)]
    opt = tp.Adam(params)
    opt.step([np.ones(4, np.float16), None])  # the params' step counts now differ
    grads = [np.full(4, value, np.float16), np.full(4, value, np.float16)]
    assert grad_overflows(grads[0], scale) is False
    assert opt.step(grads, grad_scale=scale) is False
