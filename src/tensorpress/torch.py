"""PyTorch adapters: ``Adam`` and ``AdamW`` as ``torch.optim.Optimizer`` subclasses.

    from tensorpress.torch import AdamW
    opt = AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    for x, y in batches:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

Drop-in replacements for ``torch.optim.Adam`` / ``AdamW`` on CPU float32/float64 tensors, and
on bfloat16 / float16 tensors with torch's fused layout or float32 master weights
(docs/mixed_precision.md): the same constructor arguments and defaults, param groups,
closures, ``zero_grad``, learning-rate schedulers, and the same state layout (``step`` as a
0-dim float32 tensor, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``), so a state_dict saved
from torch.optim.Adam loads here and the other way round. Each step runs the tensors of a
param group in one native call on the tensors' memory: nothing is copied.

This module imports torch; ``import tensorpress`` does not import it.
"""

import collections
import struct

import torch

from . import _checks, optim as _optim
from ._backend import adam as _kernels
from ._consts import (ADAM_ROW_HEAD, ADAM_ROW_TAIL, ADAM_STOCHASTIC_ROUNDING, BFLOAT16, FLOAT16,
                      FLOAT32, FLOAT64)
from .errors import DTypeError, InvalidArgumentError

__all__ = ["Adam", "AdamW"]

_HALF = (torch.bfloat16, torch.float16)
_FLOATS = (torch.float32, torch.float64) + _HALF
_DTYPE_CODES = {torch.float32: FLOAT32, torch.float64: FLOAT64, torch.float16: FLOAT16,
                torch.bfloat16: BFLOAT16}
# The grad dtypes each param dtype takes (docs/mixed_precision.md, csrc/tp_adam.h).
_GRAD_DTYPES = {
    torch.float64: (torch.float64,),
    torch.float32: (torch.float32, torch.bfloat16, torch.float16),
    torch.bfloat16: (torch.bfloat16, torch.float32),
    torch.float16: (torch.float16, torch.float32),
}
_STATE_DTYPES = (torch.float32, torch.bfloat16)
_ROW_HEAD, _ROW_TAIL = struct.Struct(ADAM_ROW_HEAD), struct.Struct(ADAM_ROW_TAIL)
if struct.calcsize("P") != 8:
    raise ImportError("tensorpress.torch passes tensors to the kernels by 64-bit address")

# The mixed-precision options: the optimizer's (constructor arguments), which a param group may
# override with keys of the same names. They are not in `defaults`, so param groups and
# state_dicts keep torch.optim.Adam's layout.
_MIXED_KEYS = ("master_weights", "state_dtype", "stochastic_rounding", "seed")
_Mixed = collections.namedtuple("_Mixed", _MIXED_KEYS)
_SEED_MAX = 2**64 - 1


def _mixed_options(values, where):
    """Validated _Mixed from (master_weights, state_dtype, stochastic_rounding, seed)."""
    master, state_dtype, stochastic, seed = values
    if not isinstance(master, bool):
        raise InvalidArgumentError(f"{where}master_weights must be a bool, got {master!r}")
    if state_dtype is not None and state_dtype not in _STATE_DTYPES:
        if state_dtype is torch.float16:
            raise DTypeError(
                f"{where}state_dtype=torch.float16 is refused: the second moment (grad**2 times "
                "1 - beta2) of gradients near 1e-2 falls below float16's normal range and the step "
                "diverges (as torch's fused float16 Adam does); use torch.float32 or torch.bfloat16")
        raise DTypeError(f"{where}state_dtype must be None, torch.float32 or torch.bfloat16, got {state_dtype!r}")
    if not isinstance(stochastic, bool):
        raise InvalidArgumentError(f"{where}stochastic_rounding must be a bool, got {stochastic!r}")
    seed = _checks.int_in_range(seed, f"{where}seed", 0, _SEED_MAX)
    if master and stochastic:
        raise InvalidArgumentError(
            f"{where}stochastic_rounding=True and master_weights=True together: with master weights "
            "the param is the float32 master rounded to nearest; stochastic rounding is for half "
            "params without a master")
    return _Mixed(master, state_dtype, stochastic, seed)


def _state_dtype_of(param_dtype, mixed):
    """The dtype of a param's exp_avg / exp_avg_sq / max_exp_avg_sq under `mixed`."""
    if param_dtype is torch.float64:
        return torch.float64
    if mixed.state_dtype is not None:
        return mixed.state_dtype
    return torch.bfloat16 if param_dtype is torch.bfloat16 else torch.float32


def _scalar_dtype():
    # torch.optim.Adam's choice for state["step"] (non-fused path): float32 unless the default
    # dtype is float64.
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _number(value, name):
    """A Python float from a float or a one-element tensor (torch allows tensor lr/betas)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise InvalidArgumentError(f"{name} as a tensor must have one element, got shape {tuple(value.shape)}")
        return value.item()
    return value


_HYPER_CACHE = {}


def _group_hyper(group, where):
    """Validated (lr, betas, eps, weight_decay) of a param group, as Python floats."""
    try:
        beta1, beta2 = group["betas"]
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{where}['betas'] must be a pair, got {group['betas']!r}") from None
    key = (group["lr"], beta1, beta2, group["eps"], group["weight_decay"])
    # Plain numbers already validated are not checked again (a scheduler yields few values).
    cacheable = all(type(v) is float or type(v) is int for v in key)
    if cacheable:
        hit = _HYPER_CACHE.get(key)
        if hit is not None:
            return hit
    lr = _number(key[0], f"{where}['lr']")
    betas = (_number(beta1, f"{where}['betas'][0]"), _number(beta2, f"{where}['betas'][1]"))
    # _checks.adam_hyper raises the same exceptions tensorpress.adam_step would, but before any update.
    _, lr, beta1, beta2, eps, wd, _ = _checks.adam_hyper(1, lr, betas, key[3], key[4], None)
    hyper = (lr, (beta1, beta2), eps, wd)
    if cacheable:
        if len(_HYPER_CACHE) > 4096:  # a new lr every step: stay bounded
            _HYPER_CACHE.clear()
        _HYPER_CACHE[key] = hyper
    return hyper


def _check_param(p, where):
    """Refuse what the kernel cannot update in place without a copy."""
    if not isinstance(p, torch.Tensor):
        raise DTypeError(f"{where} must be a torch.Tensor, got {type(p).__name__}")
    if p.layout is not torch.strided:
        raise InvalidArgumentError(f"{where} has layout {p.layout}; only dense (strided) tensors are supported")
    if not p.is_cpu:
        raise InvalidArgumentError(f"{where} is on device {p.device}; tensorpress.torch optimizers update CPU tensors only")
    if p.dtype not in _FLOATS:
        kind = ("complex tensors are not supported" if p.is_complex()
                else "expected torch.float32, torch.float64, torch.bfloat16 or torch.float16")
        raise DTypeError(f"{where} has dtype {p.dtype}; {kind}")
    if not p.is_contiguous():
        raise InvalidArgumentError(
            f"{where} is not contiguous (shape {tuple(p.shape)}, strides {p.stride()}); tensorpress never "
            "copies silently: make the parameter contiguous (e.g. not channels_last) before creating the optimizer"
        )


def _check_grad(g, p, where):
    if g.layout is not torch.strided:
        raise InvalidArgumentError(
            f"{where}.grad is sparse ({g.layout}); Adam does not support sparse gradients, "
            "consider torch.optim.SparseAdam"
        )
    if not g.is_cpu:
        raise InvalidArgumentError(f"{where}.grad is on device {g.device}; expected a CPU tensor")
    if g.dtype not in _GRAD_DTYPES[p.dtype]:
        allowed = " or ".join(str(d) for d in _GRAD_DTYPES[p.dtype])
        raise DTypeError(f"{where}.grad has dtype {g.dtype} but the parameter has {p.dtype}, "
                         f"whose grads are {allowed} (docs/mixed_precision.md)")
    if g.shape != p.shape:
        raise InvalidArgumentError(f"{where}.grad has shape {tuple(g.shape)} but the parameter has {tuple(p.shape)}")
    if not g.is_contiguous():
        raise InvalidArgumentError(
            f"{where}.grad is not contiguous (strides {g.stride()}); tensorpress never copies silently"
        )
    if g.is_neg() or g.is_conj():
        # A lazily negated view: its memory holds -grad; reading it would need a copy.
        raise InvalidArgumentError(f"{where}.grad is a lazily negated view; call .resolve_neg() first")


class _Where:
    """'param_groups[0]['params'][3]', formatted only when an error message needs it (the
    per-parameter f-string was a measurable share of a step over hundreds of small tensors)."""

    __slots__ = ("group", "index")

    def __init__(self, group, index):
        self.group, self.index = group, index

    def __format__(self, spec):
        return format(str(self), spec)

    def __str__(self):
        return f"param_groups[{self.group}]['params'][{self.index}]"


def _view(t, where):
    """A NumPy array sharing `t`'s memory (never a copy)."""
    try:
        # .numpy() refuses tensors that require grad; detach() is a view, and grads (which
        # normally do not require grad) skip it because it costs a microsecond or two.
        return t.detach().numpy() if t.requires_grad else t.numpy()
    except RuntimeError as e:  # e.g. a lazy negation/conjugation bit: numpy() would need a copy
        raise InvalidArgumentError(f"{where} cannot be viewed as a NumPy array without a copy: {e}") from None


class _Views:
    """One parameter's row of the kernel table and a NumPy view of its step count, kept between
    steps because making them costs microseconds. `param_valid` / `state_valid` re-check, every
    step, that the tensors are the same objects over the same memory, so a replaced state
    entry, ``p.data = ...`` (ZeroRedundancyOptimizer's bucket views) or a loaded state_dict is
    picked up (the record is then rebuilt). The row's tail is kept for one (grad dtype, tensor
    index) and packed anew when either changes."""

    __slots__ = ("param", "key", "amsgrad", "mixed", "state_tensors", "step", "row_head",
                 "tail_fields", "tail_grad", "tail_index", "row_tail", "state_code")

    def __init__(self, p, state, amsgrad, mixed, master, state_dtype, where):
        names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if amsgrad else ("exp_avg", "exp_avg_sq")
        for n in names + (("master_param",) if master else ()):
            # Checked here, once per state tensor, so a bad loaded state is reported before
            # any tensor of this step is updated (the kernel would only see it mid-step).
            t = state[n]
            if not isinstance(t, torch.Tensor) or t.layout is not torch.strided or not t.is_cpu:
                raise InvalidArgumentError(f"state of {where}: {n!r} must be a dense CPU tensor")
            expected = torch.float32 if n == "master_param" else state_dtype
            if t.shape != p.shape or t.dtype != expected:
                raise InvalidArgumentError(
                    f"state of {where}: {n!r} is {t.dtype}{list(t.shape)}, the parameter is "
                    f"{p.dtype}{list(p.shape)} and its {n} must be {expected}{list(p.shape)}"
                    + ("" if n == "master_param" else " (see state_dtype)"))
            if not t.is_contiguous():
                raise InvalidArgumentError(f"state of {where}: {n!r} is not contiguous; tensorpress never copies silently")
        if master:
            names += ("master_param",)
        self.param = p
        self.key = (p.data_ptr(), p.shape, p.dtype)
        self.amsgrad = amsgrad
        self.mixed = mixed  # the options the state was checked against (interned: see _group_mixed)
        self.state_code = _DTYPE_CODES[state_dtype]
        self.state_tensors = tuple((n, state[n], state[n].data_ptr()) for n in names + ("step",))
        step = state["step"]
        if not (isinstance(step, torch.Tensor) and step.numel() == 1 and step.is_cpu):
            raise InvalidArgumentError(f"state of {where}: 'step' must be a one-element CPU tensor")
        self.step = _view(step, f"state of {where}: step").reshape(())
        # This tensor's row of the kernel's table, but for the grad's address (see step).
        self.row_head = _ROW_HEAD.pack(p.data_ptr())
        self.tail_fields = (state["exp_avg"].data_ptr(), state["exp_avg_sq"].data_ptr(),
                            state["max_exp_avg_sq"].data_ptr() if amsgrad else 0,
                            state["master_param"].data_ptr() if master else 0, p.numel())
        self.tail_grad = self.tail_index = self.row_tail = None

    def tail(self, grad_dtype, index):
        """The row after the grad's address, for a grad of dtype `grad_dtype` and the tensor
        index `index` (stochastic rounding's)."""
        if grad_dtype is not self.tail_grad or index != self.tail_index:
            self.row_tail = _ROW_TAIL.pack(*self.tail_fields, index, _DTYPE_CODES[self.param.dtype],
                                           _DTYPE_CODES[grad_dtype], self.state_code, 0)
            self.tail_grad, self.tail_index = grad_dtype, index
        return self.row_tail

    def param_valid(self, p):
        """`p` is still the tensor these views were made for, over the same contiguous memory."""
        return self.param is p and (p.data_ptr(), p.shape, p.dtype) == self.key and p.is_contiguous() and p.is_cpu

    def state_valid(self, state, amsgrad):
        """The state holds the tensors these views were made for (the caller also checks that
        the options are the same object as `self.mixed`, so the state's dtypes and the master
        are still what they were checked against)."""
        if amsgrad != self.amsgrad:
            return False
        for name, t, ptr in self.state_tensors:
            s = state.get(name)
            if s is not t or s.data_ptr() != ptr:
                return False
        return True


class Adam(torch.optim.Optimizer):
    """torch.optim.Adam for CPU float32 / float64 / bfloat16 / float16 tensors, one native call
    per param group.

    (One call per group and step count: params whose grads were None on some earlier steps
    have fewer steps and go to a second call. Every dtype shares a call.)

    Arguments and defaults are torch.optim.Adam's. ``foreach`` and ``fused`` are accepted and
    recorded (for state_dict compatibility) but change nothing: the update is always fused.
    ``capturable=True`` and ``differentiable=True`` are not supported.

    The update follows torch.optim.Adam's operation order; results agree with torch's
    ``fused=False`` path to float32 rounding. State per parameter: ``step`` (0-dim float32
    tensor), ``exp_avg``, ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq`` -- the same keys,
    dtypes and shapes as torch, so state_dicts load in either direction.

    Refused with a clear error, never copied: parameters or grads that are not contiguous,
    sparse grads, complex / integer dtypes, tensors not on the CPU.

    **Mixed precision** (docs/mixed_precision.md). Params may be bfloat16 or float16. The
    arithmetic is float32 on values read exactly from their buffers, and each written value is
    rounded once. Keyword options:

    - ``state_dtype`` (None, torch.float32 or torch.bfloat16): the dtype of exp_avg,
      exp_avg_sq and max_exp_avg_sq. None means: bfloat16 for bfloat16 params -- the state
      layout and the behaviour of ``torch.optim.AdamW(fused=True)`` --, float32 for float16
      params, float32 for float32 params. **This differs from torch for float16**: torch's fused
      kernel keeps float16 params' states in float16, where the second moment of gradients
      near 1e-2 (about 1e-4 * (1 - beta2)) falls below float16's normal range, the step
      divides by eps and the params diverge; float16 states are refused here. float64 params
      always keep float64 states: state_dtype does not apply to them.
    - ``master_weights=True``: a float32 master copy of each bfloat16 / float16 param, kept in
      ``state[p]["master_param"]`` and made from the param's values (exactly) at its first
      step. The update reads and writes the master, and the param receives the new master
      rounded to nearest even, in the same pass. The master is authoritative: a param written
      by other code is overwritten at the next step, unless the master is written too (or
      deleted from the state, so that the next step makes it anew from the param). float32 and
      float64 params have no master.
    - ``stochastic_rounding=True`` with ``seed`` (an int in [0, 2**64), default 0): half params
      without a master are written rounded stochastically, so that updates below half an ulp
      still move them on average. The random bits depend only on (seed, step, tensor index,
      element index), where the tensor index is the param's position in this optimizer counted
      across its param groups: the same bits on every backend, thread count and however the
      step is split into native calls. Not together with master_weights (InvalidArgumentError).

    These options are the optimizer's; a param group may override them with keys of the same
    names (``ZeroRedundancyOptimizer`` copies its keyword arguments into its groups, where
    they are consistent with the local optimizer's). They are not part of ``defaults``, so
    param groups and state_dicts have torch's layout.

    Grads: the param's dtype; float32 params also take bfloat16 / float16 grads, and half
    params float32 grads (torch checks ``p.grad_dtype`` when ``p.grad`` is assigned: set it to
    None or the grad's dtype first). Any other combination raises DTypeError naming the param,
    before anything is modified.

    ``load_state_dict`` keeps every loaded state tensor in this optimizer's state dtype
    (torch's Optimizer.load_state_dict casts all of them to the param's dtype, which would round
    the float32 states and the master of a half param), and the master in float32. A state_dict
    of a bfloat16 run without master weights has the layout of ``torch.optim.AdamW(fused=True)``
    over the same params and loads into it, and back.

    Works as the ``optimizer_class`` of ``torch.distributed.optim.ZeroRedundancyOptimizer``
    (with ``parameters_as_bucket_view`` on or off: each param's data pointer is read anew every
    step, so bucket views are picked up). There, the stochastic-rounding tensor index is the
    param's position in the rank's local optimizer.

    Gradient scaling (mixed precision): ``step(grad_scale=s)`` divides every gradient by `s`
    inside the kernel, and if any unscaled gradient is NaN or Inf, or a half gradient would
    overflow its dtype when unscaled, the whole step is skipped -- no parameter, moment or step
    count changes -- and ``opt.last_found_inf`` is True. The optimizer also honours the
    ``grad_scale`` / ``found_inf`` attributes that ``torch.amp.GradScaler`` sets on optimizers
    with ``_step_supports_amp_scaling`` (as torch's fused Adam does), so ``scaler.step(opt)``
    skips ``unscale_`` and lets the kernel unscale.
    """

    _step_supports_amp_scaling = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False,
                 master_weights=False, state_dtype=None, stochastic_rounding=False, seed=0):
        if capturable:
            raise InvalidArgumentError("capturable=True is not supported (tensorpress.torch updates CPU tensors)")
        if differentiable:
            raise InvalidArgumentError("differentiable=True is not supported by the fused tensorpress kernel")
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
        defaults = dict(lr=lr, betas=(_number(beta1, "betas[0]"), _number(beta2, "betas[1]")), eps=eps,
                        weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                        foreach=foreach, capturable=False, differentiable=False, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        _group_hyper(defaults, "defaults")
        self._mixed_defaults = _mixed_options((master_weights, state_dtype, stochastic_rounding, seed), "")
        self._mixed_interned = {tuple((type(v), v) for v in self._mixed_defaults): self._mixed_defaults}
        self._views = {}
        self.last_found_inf = False
        super().__init__(params, defaults)

    def _group_mixed(self, group, where):
        """The group's validated mixed-precision options (its own keys, else the optimizer's),
        one object per distinct set of values, so a record can tell by identity that the
        options it was made under still hold."""
        mixed = self._mixed_defaults
        if not any(k in group for k in _MIXED_KEYS):
            return mixed
        values = tuple(group.get(k, v) for k, v in zip(_MIXED_KEYS, mixed))
        key = tuple((type(v), v) for v in values)  # True and 1 are equal, but only one is valid
        interned = self.__dict__.setdefault("_mixed_interned", {})
        try:
            hit = interned.get(key)
        except TypeError:  # an unhashable value: not a valid option, and the check says why
            return _mixed_options(values, f"{where}: ")
        if hit is None:
            hit = _mixed_options(values, f"{where}: ")
            hit = interned.get(tuple((type(v), v) for v in hit)) or hit
            if len(interned) > 256:
                interned.clear()
            interned[key] = interned[tuple((type(v), v) for v in hit)] = hit
        return hit

    def add_param_group(self, param_group):
        """torch's add_param_group, plus the checks the kernel needs (done once, here, so a bad
        parameter is reported when the optimizer is built rather than at the first step)."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        where = f"param_groups[{len(self.param_groups) - 1}]"
        try:
            _group_hyper(group, where)
            self._group_mixed(group, where)
            for i, p in enumerate(group["params"]):
                _check_param(p, f"{where}['params'][{i}]")
        except Exception:
            self.param_groups.pop()  # as if never added (torch's checks also come first)
            raise

    def __getstate__(self):
        # torch.optim.Optimizer pickles defaults, state and param_groups only.
        state = super().__getstate__()
        state["_mixed_defaults"] = self._mixed_defaults
        return state

    def __setstate__(self, state):
        # As torch.optim.Adam.__setstate__ (used by load_state_dict and unpickling): fill
        # options missing from old state_dicts and turn plain-number steps into tensors.
        super().__setstate__(state)
        self.__dict__.setdefault("last_found_inf", False)
        self.__dict__.setdefault("_mixed_defaults", _Mixed(False, None, False, 0))
        self._mixed_interned = {tuple((type(v), v) for v in self._mixed_defaults): self._mixed_defaults}
        self._views = {}  # views of replaced state tensors must not be kept alive
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("capturable", False)
            group.setdefault("differentiable", False)
            group.setdefault("decoupled_weight_decay", False)
            group.setdefault("fused", None)
            for p in group["params"]:
                p_state = self.state.get(p, [])
                if len(p_state) != 0 and not torch.is_tensor(p_state["step"]):
                    p_state["step"] = torch.tensor(float(p_state["step"]), dtype=_scalar_dtype())

    def load_state_dict(self, state_dict):
        """torch.optim.Optimizer.load_state_dict: accepts state_dicts of torch.optim.Adam/AdamW.
        Like torch, tensors already of the right dtype are shared with `state_dict`, not copied.
        Unlike torch, each state tensor is kept in this optimizer's state dtype, not cast to the
        param's (see the class docstring); a master is kept in float32, and dropped for a param
        that has none here."""
        self._views = {}
        try:  # the loaded tensors as they were, before torch casts them to the params' dtypes
            originals = [(k, dict(v)) for k, v in state_dict["state"].items() if isinstance(v, dict)]
            saved_params = [list(g["params"]) for g in state_dict["param_groups"]]
        except Exception:  # malformed: torch's load_state_dict words the error
            originals, saved_params = [], []
        super().load_state_dict(state_dict)
        self._views = {}
        id_map, options = {}, {}  # saved param id -> param; id(param) -> its group's options
        for ids, group in zip(saved_params, self.param_groups):
            id_map.update(zip(ids, group["params"]))
        for gi, group in enumerate(self.param_groups):
            mixed = self._group_mixed(group, f"param_groups[{gi}]")
            options.update((id(p), mixed) for p in group["params"])
        for k, entry in originals:
            p = id_map.get(k) if not isinstance(k, torch.Tensor) else None
            if p is None or p not in self.state:
                continue
            mixed = options[id(p)]
            state = self.state[p]
            sdtype = _state_dtype_of(p.dtype, mixed)
            for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                value = entry.get(key)
                if torch.is_tensor(value) and value.is_floating_point() and p.is_floating_point():
                    state[key] = value.to(dtype=sdtype, device=p.device)
            value = entry.get("master_param")
            if value is not None:
                if mixed.master_weights and p.dtype in _HALF and torch.is_tensor(value):
                    state["master_param"] = value.to(dtype=torch.float32, device=p.device)
                else:
                    state.pop("master_param", None)

    def _record(self, p, rec, group, mixed, where, undo):
        """The views of `p` and its state (`rec` if still valid), creating the state on first use
        and noting in `undo` what it changed (see step)."""
        state = self.state[p]
        amsgrad = bool(group["amsgrad"])
        sdtype = _state_dtype_of(p.dtype, mixed)
        master = mixed.master_weights and (p.dtype is torch.bfloat16 or p.dtype is torch.float16)
        if len(state) == 0:
            undo.extend((p, key, None) for key in ("step", "exp_avg", "exp_avg_sq"))
            # torch keeps a fused group's step in float32 whatever the default dtype.
            state["step"] = torch.tensor(0.0, dtype=torch.float32 if group["fused"] else _scalar_dtype())
            state["exp_avg"] = torch.zeros(p.shape, dtype=sdtype)
            state["exp_avg_sq"] = torch.zeros(p.shape, dtype=sdtype)
        if amsgrad and "max_exp_avg_sq" not in state:
            undo.append((p, "max_exp_avg_sq", None))
            # A group switched to amsgrad after it started: the running max starts at zero,
            # which is what max(0, v) over the coming steps needs.
            state["max_exp_avg_sq"] = torch.zeros(p.shape, dtype=sdtype)
        if master:
            if "master_param" not in state:
                undo.append((p, "master_param", None))
                # The param's values, exactly (every half value is a float32).
                state["master_param"] = torch.empty(p.shape, dtype=torch.float32).copy_(p.detach())
        elif "master_param" in state:
            # A master this param does not use (master_weights switched off, or float32 params):
            # it would go stale, so it goes.
            undo.append((p, "master_param", state.pop("master_param")))
        if rec is None or rec.mixed is not mixed or not rec.state_valid(state, amsgrad):
            rec = self._views[id(p)] = _Views(p, state, amsgrad, mixed, master, sdtype, where)
        return rec

    def step(self, closure=None, *, grad_scale=None):
        """One Adam step over every parameter whose ``.grad`` is not None; returns the closure's
        loss (None without a closure).

        `closure` re-evaluates the model and returns the loss; it runs under
        ``torch.enable_grad()``. `grad_scale` (a number or one-element tensor): gradients are
        divided by it, and a step that finds a NaN/Inf unscaled gradient changes nothing and
        sets ``self.last_found_inf = True``.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        # torch.amp.GradScaler hands the scale and its own inf check over as attributes.
        found_inf_t = getattr(self, "found_inf", None)
        if grad_scale is None:
            grad_scale = getattr(self, "grad_scale", None)
        if found_inf_t is not None and float(found_inf_t) != 0.0:
            self.last_found_inf = True
            return loss
        if grad_scale is not None:
            grad_scale = _number(grad_scale, "grad_scale")
            _checks.check_grad_scale(grad_scale)

        # Pass 1: check everything before anything is touched (state creation included).
        plans = []
        views = self._views  # keyed by id(param); each record also holds its param
        index = 0  # a param's number in the optimizer across groups: stochastic rounding's tensor index
        for gi, group in enumerate(self.param_groups):
            hyper = _group_hyper(group, f"param_groups[{gi}]")
            params = group["params"]
            first, index = index, index + len(params)
            members = []
            for i, p in enumerate(params):
                g = p.grad
                if g is None:
                    continue
                where = _Where(gi, i)
                rec = views.get(id(p))
                if rec is None or not rec.param_valid(p):
                    _check_param(p, where)
                    rec = None
                # The common case in one expression; anything else gets the full, worded check.
                if not (g.layout is torch.strided and g.dtype is p.dtype and g.shape == p.shape
                        and g.is_contiguous() and g.is_cpu and not g.is_neg()):
                    _check_grad(g, p, where)
                members.append((p, g, rec, where, first + i))
            if members:
                plans.append((group, hyper, self._group_mixed(group, f"param_groups[{gi}]"), members))

        # Pass 2: views and step counts; the tensors of a group that share a step count (all of
        # them, unless some grads were None in earlier steps) go to one native call.
        calls = []
        undo = []  # (param, state key, previous value or None): what this step changed in the state
        try:
            for group, hyper, mixed, members in plans:
                calls += self._calls(group, hyper, mixed, members, undo)
            if len(calls) > 1:
                _check_across_calls(calls)
        except Exception:
            for p, key, old in reversed(undo):
                state = self.state[p]
                if old is None:
                    state.pop(key, None)
                else:
                    state[key] = old
                if not state:
                    del self.state[p]
                self._views.pop(id(p), None)
            raise

        # found_inf must cover every call before the first one updates anything; one call
        # checks its own tensors.
        if grad_scale is not None and len(calls) > 1:
            if _kernels.found_inf_packed(b"".join(rows for _, _, _, rows in calls),
                                         sum(len(b[0]) for _, b, _, _ in calls), grad_scale):
                self.last_found_inf = True
                return loss

        self.last_found_inf = False
        for step, b, options, rows in calls:
            found_inf = _run(step, rows, len(b[0]), options, grad_scale)
            if found_inf:  # only possible for a single call: nothing was updated
                self.last_found_inf = True
                return loss
            for s in b[2]:
                s[()] = step
        return loss

    def _calls(self, group, hyper, mixed, members, undo):
        """The native calls of one param group: (step, bucket, options, packed rows) per step count."""
        lr, betas, eps, wd = hyper
        calls = []
        buckets = {}
        amsgrad = bool(group["amsgrad"])
        state_of = self.state
        for p, g, rec, where, index in members:
            # The common case (a record still valid) without the state-creation checks.
            if rec is None or rec.mixed is not mixed or not rec.state_valid(state_of.get(p, _NO_STATE), amsgrad):
                rec = self._record(p, rec, group, mixed, where, undo)
            step = float(rec.step)
            if not (0 <= step < _checks.INT64_MAX and step == int(step)):
                raise InvalidArgumentError(f"state of {where}: step is {step}, expected a whole number >= 0 (and < 2**63 - 1)")
            b = buckets.get(step)
            if b is None:
                b = buckets[step] = ([], [], [], [])
            b[0].append(rec)
            b[1].append(g)
            b[2].append(rec.step)
            b[3].append(rec.tail(g.dtype, index))
        options = dict(lr=lr, betas=betas, eps=eps, weight_decay=wd,
                       decoupled_weight_decay=bool(group["decoupled_weight_decay"]),
                       amsgrad=amsgrad, maximize=bool(group["maximize"]),
                       stochastic_rounding=mixed.stochastic_rounding, seed=mixed.seed)
        for step, b in buckets.items():
            calls.append((int(step) + 1, b, options, _rows(b)))
        return calls


_NO_STATE = {}  # never written: what a param without state looks up


def _check_across_calls(calls):
    """A step of several native calls (param groups, or step counts within a group) must fail
    before the first call writes: each call checks only its own tensors for alignment and
    overlap, so every tensor of every call is checked here first."""
    spans = []
    for _, b, _, _ in calls:
        for rec, g in zip(b[0], b[1]):
            tensors = [("a parameter", rec.param, True), ("a grad", g, False)]
            tensors += [(f"a state tensor ({name})", t, True) for name, t, _ in rec.state_tensors if name != "step"]
            for label, t, written in tensors:
                size = t.numel() * t.element_size()
                if t.data_ptr() % t.element_size():
                    raise InvalidArgumentError(f"{label} of shape {tuple(t.shape)} is not aligned to its dtype")
                if size:
                    spans.append((t.data_ptr(), t.data_ptr() + size, label, written))
    _checks.require_disjoint_spans(spans)


def _rows(b):
    """The kernel table of a bucket (records, grads, steps, row tails), as packed bytes."""
    pack = _ROW_HEAD.pack
    return b"".join(rec.row_head + pack(g.data_ptr()) + tail for rec, g, tail in zip(b[0], b[1], b[3]))


def _run(step, rows, count, options, grad_scale):
    """One native call for a bucket: the adam family's entry for raw addresses."""
    flags = ((_optim.DECOUPLED if options["decoupled_weight_decay"] else 0)
             | (_optim.AMSGRAD if options["amsgrad"] else 0)
             | (_optim.MAXIMIZE if options["maximize"] else 0)
             | (_optim.GRAD_SCALE if grad_scale is not None else 0)
             | (ADAM_STOCHASTIC_ROUNDING if options["stochastic_rounding"] else 0))
    beta1, beta2 = options["betas"]
    return _kernels.adam_step_packed(rows, count, step, options["lr"], beta1, beta2,
                                     options["eps"], options["weight_decay"], grad_scale, flags,
                                     options["seed"])


class AdamW(Adam):
    """torch.optim.AdamW for CPU float32 / float64 / bfloat16 / float16 tensors: Adam with
    decoupled weight decay (``p *= 1 - lr*weight_decay``), default ``weight_decay=1e-2``. The
    mixed-precision options (master_weights, state_dtype, stochastic_rounding, seed) and
    everything else: see ``Adam``."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None, master_weights=False, state_dtype=None,
                 stochastic_rounding=False, seed=0):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable, differentiable=differentiable,
                         fused=fused, decoupled_weight_decay=True, master_weights=master_weights,
                         state_dtype=state_dtype, stochastic_rounding=stochastic_rounding,
                         seed=seed)

    def __setstate__(self, state):
        # As torch.optim.AdamW: loading any state keeps the decay decoupled.
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
