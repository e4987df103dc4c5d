"""Fused Adam / AdamW: the functional ``adam_step`` and the ``Adam`` / ``AdamW`` classes for NumPy.

The update follows torch.optim.Adam's operation order exactly (see csrc/adam/step.c), so results
match torch to float32 rounding. A list of tensors is updated in one native call.
"""

import math

import numpy as np

from . import _checks
from ._backend import adam as _kernels
from ._consts import ADAM_AMSGRAD as AMSGRAD
from ._consts import ADAM_DECOUPLED as DECOUPLED
from ._consts import ADAM_GRAD_SCALE as GRAD_SCALE
from ._consts import ADAM_MAXIMIZE as MAXIMIZE
from ._consts import ADAM_STOCHASTIC_ROUNDING as STOCHASTIC_ROUNDING
from .errors import DTypeError, InvalidArgumentError



_hyper = _checks.adam_hyper


def _as_tuples(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, master_params):
    """Each argument as a tuple of arrays (a single array becomes a 1-tuple), None kept. The
    tuples also keep every array alive while the kernel runs without the GIL."""
    args = (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, master_params)
    if type(params) is np.ndarray:
        # The kernel layer checks every element; a wrong kind of argument is worded there.
        for name, a in zip(_checks.ADAM_ROLES, args):
            if a is not None and not isinstance(a, np.ndarray):
                raise DTypeError(f"params is one array, so {name} must be one array too, got {type(a).__name__}")
        return tuple(None if a is None else (a,) for a in args)
    sequences = (list, tuple)
    if all(a is None or type(a) in sequences for a in args) and type(params) in sequences:
        return tuple(None if a is None else tuple(a) for a in args)
    if isinstance(params, np.ndarray):
        for name, a in zip(_checks.ADAM_ROLES, args):
            if a is not None and not isinstance(a, np.ndarray):
                raise DTypeError(f"params is one array, so {name} must be one array too, got {type(a).__name__}")
        return tuple(None if a is None else (a,) for a in args)
    out = []
    for name, a in zip(_checks.ADAM_ROLES, args):
        if a is None:
            out.append(None)
        elif isinstance(a, np.ndarray):
            raise DTypeError(f"params is a list, so {name} must be a list of arrays too, got one array")
        else:
            try:
                out.append(tuple(a))
            except TypeError:
                raise DTypeError(f"{name} must be an array or a list of arrays, got {type(a).__name__}") from None
    return tuple(out)


def _seed(seed):
    return _checks.int_in_range(seed, "seed", 0, 2**64 - 1)


def _tensor_indices(indices, count):
    try:
        entries = list(indices)
    except TypeError:
        raise DTypeError(f"tensor_indices must be a sequence of ints, got {type(indices).__name__}") from None
    values = [_checks.int_in_range(i, f"tensor_indices[{n}]", 0, _checks.INT64_MAX) for n, i in enumerate(entries)]
    if len(values) != count:
        raise InvalidArgumentError(f"tensor_indices has {len(values)} entries for {count} params")
    return values


_HALF_OVERFLOW = {_checks.FLOAT16: np.float32(65520.0), _checks.BFLOAT16: np.float32(np.uint32(0x7F7F8000).view(np.float32))}


def _grads_found_inf(grads, grad_scale):
    """adam_step's found-inf rule (docs/mixed_precision.md), for a step made of several calls:
    grad / grad_scale in float32 (float64 for float64 grads) is NaN or Inf, or for a half grad
    at least the magnitude that rounds to Inf in its own dtype."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for g in grads:
            if g.dtype == np.float64:
                q = np.abs(g / np.float64(grad_scale))
            else:
                q = np.abs(g.astype(np.float32) / np.float32(grad_scale))
            limit = _HALF_OVERFLOW.get(g.dtype, np.inf)
            if not (q < limit).all():
                return True
    return False


def adam_step(params, grads, exp_avgs, exp_avg_sqs, *, step, lr=1e-3, betas=(0.9, 0.999),
              eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False, amsgrad=False,
              max_exp_avg_sqs=None, maximize=False, grad_scale=None, master_params=None,
              stochastic_rounding=False, seed=0, tensor_indices=None):
    """One Adam (or AdamW) update of `params`, `exp_avgs` and `exp_avg_sqs`, in place.

    Each array argument is one ndarray or a list of them (C-contiguous, the arrays of one
    tensor alike in shape); a list is updated in one native call. `step` is the 1-based step
    number used in the bias corrections. With ``decoupled_weight_decay=True`` the decay is
    AdamW's (``p *= 1 - lr*weight_decay``), else Adam's L2 term (``g += weight_decay*p``).
    ``amsgrad=True`` needs `max_exp_avg_sqs`.

    Dtypes, per tensor (docs/mixed_precision.md): float64 throughout; or a float32 param with
    float32, bfloat16 or float16 grads; or a bfloat16 / float16 param with grads of its dtype or
    float32. States (exp_avg, exp_avg_sq, max_exp_avg_sq) are float32 or bfloat16, one dtype
    per tensor (float16 states are refused: the second moment underflows). Arithmetic is
    float32 (float64 for float64), and each written value is rounded once, to nearest even.

    `master_params` (one per param: a float32 array for a half param, or None for a param
    without one): the update is made on the master, and the param receives the new master rounded
    to nearest even, in the same pass. ``stochastic_rounding=True`` writes half params without
    a master rounded stochastically, keyed by (`seed`, `step`, tensor index, element index):
    the same bits on every backend and thread count. A tensor's index is its position in the
    list unless `tensor_indices` gives them.

    When `grad_scale` is given, gradients are divided by it first (in float32 for float32 /
    half grads), and if any unscaled gradient of any tensor is NaN or Inf, or beyond the range
    of its own dtype, nothing is updated and True is returned (torch's ``found_inf``). Without
    `grad_scale` there is no such check (as in torch.optim.Adam) and the result is always
    False. Gradients are only read; they may be read-only arrays.

    Raises DTypeError / InvalidArgumentError (TypeError / ValueError) before touching anything
    when arrays disagree in shape, have a dtype combination not listed above, are
    non-contiguous, read-only (other than grads), overlap in memory, or a hyper-parameter is
    out of range.
    """
    step, lr, beta1, beta2, eps, weight_decay, grad_scale = _hyper(step, lr, betas, eps, weight_decay, grad_scale)
    flags = (DECOUPLED if decoupled_weight_decay else 0) | (MAXIMIZE if maximize else 0)
    if grad_scale is not None:
        flags |= GRAD_SCALE
    if amsgrad:
        if max_exp_avg_sqs is None:
            raise InvalidArgumentError("amsgrad=True needs max_exp_avg_sqs")
        flags |= AMSGRAD
    elif max_exp_avg_sqs is not None:
        raise InvalidArgumentError("max_exp_avg_sqs is only used with amsgrad=True")
    if stochastic_rounding is not False:
        if not isinstance(stochastic_rounding, (bool, np.bool_)):
            raise InvalidArgumentError(f"stochastic_rounding must be a bool, got {stochastic_rounding!r}")
        if stochastic_rounding:
            if master_params is not None:
                raise InvalidArgumentError("stochastic_rounding is for half params without master_params: "
                                           "with a master, the param is the master rounded to nearest")
            flags |= STOCHASTIC_ROUNDING
    if type(seed) is not int or seed != 0:
        seed = _seed(seed)
    if type(params) is np.ndarray and max_exp_avg_sqs is None and master_params is None:
        lists = ((params,), (grads,), (exp_avgs,), (exp_avg_sqs,), None, None)  # the one-tensor call, inline
    else:
        lists = _as_tuples(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, master_params)
    if tensor_indices is not None:
        tensor_indices = _tensor_indices(tensor_indices, len(lists[0]))
    return _kernels.adam_step(lists, step, lr, beta1, beta2, eps, weight_decay, grad_scale, flags,
                              seed, tensor_indices)


_STATE_DTYPES = (np.dtype(np.float32), _checks.BFLOAT16)


def _state_dtype_of(p, state_dtype):
    """The dtype of a param's optimizer states: float64 for float64; else `state_dtype` when
    given; else bfloat16 for bfloat16 (as torch's fused AdamW) and float32 for float32 and
    float16 (float16 states underflow, docs/mixed_precision.md)."""
    if p.dtype == np.float64:
        return p.dtype
    if state_dtype is not None:
        return state_dtype
    return _checks.BFLOAT16 if p.dtype == _checks.BFLOAT16 else np.dtype(np.float32)


class Adam:
    """Adam over a list of NumPy arrays, updated in place by one native call per step.

        opt = tp.Adam([w, b], lr=1e-3)
        opt.step([dw, db])          # a None grad skips that array this step

    Hyper-parameters are attributes (``opt.lr = 1e-4`` between steps is how a schedule is
    applied). Each array keeps its own step count, as in torch.optim.Adam. ``state_dict()``
    returns copies of the state in torch's layout; ``load_state_dict`` restores it exactly.

    Params are float32, float64, bfloat16 or float16 (docs/mixed_precision.md). The states
    are float64 for float64 params; otherwise `state_dtype` (float32 or ml_dtypes.bfloat16)
    when given, else bfloat16 for bfloat16 params (torch's fused AdamW keeps them so) and
    float32 for float32 and float16 params (float16 states underflow). ``master_weights=True``
    keeps a float32 copy of every half param, updated by the step, and writes the param as it
    rounded to nearest (``state_dict()["state"][i]["master_param"]``).
    ``stochastic_rounding=True`` (half params, no master weights) rounds the written params
    stochastically, keyed by `seed`, the step, the param's index and the element's index.
    """

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *,
                 amsgrad=False, maximize=False, state_dtype=None, master_weights=False,
                 stochastic_rounding=False, seed=0):
        if isinstance(params, np.ndarray):
            params = [params]
        self.params = list(params)
        checked = []
        for i, p in enumerate(self.params):
            p = self.params[i] = _checks.require_ndarray(p, "params", i)
            _checks.require_dtype(p, _checks.ADAM_PARAM_DTYPES, "params", i)
            _checks.require_contiguous(p, "params", i)
            _checks.require_aligned(p, "params", i)
            _checks.require_writable(p, "params", i)
            checked.append((f"params[{i}]", p, True))
        _checks.require_no_overlap(checked)
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay
        _hyper(1, lr, self.betas, eps, weight_decay, None)
        self.amsgrad, self.maximize = bool(amsgrad), bool(maximize)
        if state_dtype is not None:
            try:
                state_dtype = np.dtype(state_dtype)
            except TypeError:
                raise DTypeError(f"state_dtype must be a dtype, got {state_dtype!r}") from None
            if state_dtype not in _STATE_DTYPES:
                raise DTypeError(f"state_dtype must be float32 or bfloat16, got {state_dtype}"
                                 + ("; float16 states underflow (docs/mixed_precision.md)" if state_dtype == np.float16 else ""))
        for name, flag in (("master_weights", master_weights), ("stochastic_rounding", stochastic_rounding)):
            if not isinstance(flag, (bool, np.bool_)):
                raise InvalidArgumentError(f"{name} must be a bool, got {flag!r}")
        if master_weights and stochastic_rounding:
            raise InvalidArgumentError("stochastic_rounding is for half params without master weights: "
                                       "with master weights the param is the master rounded to nearest")
        self.state_dtype = state_dtype
        self.master_weights, self.stochastic_rounding = bool(master_weights), bool(stochastic_rounding)
        self.seed = _seed(seed)
        self._steps = [0] * len(self.params)
        self._init_state()

    def _state_dtypes(self):
        return [_state_dtype_of(p, self.state_dtype) for p in self.params]

    def _init_state(self):
        dtypes = self._state_dtypes()
        self._exp_avgs = [np.zeros(p.shape, d) for p, d in zip(self.params, dtypes)]
        self._exp_avg_sqs = [np.zeros(p.shape, d) for p, d in zip(self.params, dtypes)]
        self._max_exp_avg_sqs = [np.zeros(p.shape, d) for p, d in zip(self.params, dtypes)] if self.amsgrad else None
        self._masters = None
        if self.master_weights:
            self._masters = [p.astype(np.float32) if p.dtype in _checks.HALF_DTYPES else None
                             for p in self.params]

    def _options(self):
        return dict(lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay,
                    decoupled_weight_decay=self._decoupled, amsgrad=self.amsgrad,
                    maximize=self.maximize)

    def step(self, grads, *, grad_scale=None):
        """Update every array whose grad is not None. Returns found_inf (see adam_step)."""
        if isinstance(grads, np.ndarray):
            grads = [grads]
        grads = list(grads)
        if len(grads) != len(self.params):
            raise InvalidArgumentError(f"step got {len(grads)} grads for {len(self.params)} params")
        # Arrays whose step counts agree are updated together (normally all of them, in one call).
        groups = {}
        for i, g in enumerate(grads):
            if g is not None:
                groups.setdefault(self._steps[i], []).append(i)
        options = self._options()
        if len(groups) > 1:
            # Several calls: everything is checked before the first one writes, so a step that
            # raises has modified nothing, and found_inf covers every group.
            ix = [i for group in groups.values() for i in group]
            checked = _checks.check_adam_tensors(self._lists(ix, grads))
            _hyper(max(groups) + 1, self.lr, self.betas, self.eps, self.weight_decay, grad_scale)
            if grad_scale is not None and _grads_found_inf(checked[1], float(grad_scale)):
                return True
        for step, ix in groups.items():
            params, group_grads, exp_avgs, exp_avg_sqs, maxes, masters = self._lists(ix, grads)
            found_inf = adam_step(params, group_grads, exp_avgs, exp_avg_sqs, step=step + 1,
                                  max_exp_avg_sqs=maxes, master_params=masters,
                                  stochastic_rounding=self.stochastic_rounding, seed=self.seed,
                                  tensor_indices=ix if self.stochastic_rounding else None,
                                  grad_scale=grad_scale, **options)
            if found_inf:
                return True
            for i in ix:
                self._steps[i] = step + 1
        return False

    def _lists(self, ix, grads):
        """The arrays of the params numbered `ix`, as adam_step's lists (None where unused)."""
        pick = lambda arrays: None if arrays is None else [arrays[i] for i in ix]  # noqa: E731
        return [pick(self.params), [grads[i] for i in ix], pick(self._exp_avgs),
                pick(self._exp_avg_sqs), pick(self._max_exp_avg_sqs), pick(self._masters)]

    def state_dict(self):
        """Copies of the state, laid out like torch.optim.Adam.state_dict() (plus
        ``master_param`` per half param with master weights)."""
        state = {}
        for i in range(len(self.params)):
            if self._steps[i] == 0:
                continue
            entry = {"step": self._steps[i], "exp_avg": self._exp_avgs[i].copy(),
                     "exp_avg_sq": self._exp_avg_sqs[i].copy()}
            if self._max_exp_avg_sqs is not None:
                entry["max_exp_avg_sq"] = self._max_exp_avg_sqs[i].copy()
            if self._masters is not None and self._masters[i] is not None:
                entry["master_param"] = self._masters[i].copy()
            state[i] = entry
        group = self._options()
        group["stochastic_rounding"], group["seed"] = self.stochastic_rounding, self.seed
        group["params"] = list(range(len(self.params)))
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict):
        """Restore a state_dict() of an optimizer over arrays of the same shapes and dtypes.

        Everything is checked before anything changes: state keys are the param numbers 0..n-1
        (ints, or their decimal strings as a JSON round trip leaves them), each step a whole
        number >= 1 (3 or 3.0, as torch keeps it), the hyper-parameters in range, each state
        array of this optimizer's state dtype and shape (and, with master weights, a float32
        ``master_param`` per half param). On an error the optimizer is left as it was."""
        try:
            (group,) = state_dict["param_groups"]
            state = state_dict["state"]
            items = list(state.items())
            group_params = list(group.get("params", ()))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InvalidArgumentError("not an Adam state_dict with one param group") from None
        n = len(self.params)
        if group_params != list(range(n)):
            raise InvalidArgumentError(f"the state_dict is for {len(group_params)} arrays, this optimizer has {n}")
        try:
            lr, betas, eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        except KeyError as exc:
            raise InvalidArgumentError(f"the state_dict's param group has no {exc.args[0]!r}") from None
        _hyper(1, lr, betas, eps, weight_decay, None)
        betas = tuple(betas)
        flags = {}
        for name in ("amsgrad", "maximize"):
            value = group.get(name, False)
            if not isinstance(value, (bool, np.bool_)):
                raise InvalidArgumentError(f"the state_dict's {name} must be a bool, got {value!r}")
            flags[name] = bool(value)
        amsgrad = flags["amsgrad"]
        stochastic = group.get("stochastic_rounding", self.stochastic_rounding)
        if not isinstance(stochastic, (bool, np.bool_)):
            raise InvalidArgumentError(f"the state_dict's stochastic_rounding must be a bool, got {stochastic!r}")
        if stochastic and self.master_weights:
            raise InvalidArgumentError("the state_dict asks for stochastic rounding, and this optimizer keeps master weights")
        seed = _seed(group.get("seed", self.seed))
        steps = [0] * n
        keys = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if amsgrad else [])
        state_dtypes = self._state_dtypes()
        loaded = []
        for key, entry in items:
            i = _state_index(key, n)
            if steps[i]:
                raise InvalidArgumentError(f"the state_dict holds param {i} twice")
            p = self.params[i]
            wants_master = self.master_weights and p.dtype in _checks.HALF_DTYPES
            names = keys + (["master_param"] if wants_master else [])
            try:
                steps[i] = _whole_step(entry["step"], i)
                arrays = [np.asarray(entry[name]) for name in names]
            except (KeyError, TypeError) as exc:
                raise InvalidArgumentError(f"state[{key!r}] lacks {exc}") from None
            for name, a in zip(names, arrays):
                dtype = np.dtype(np.float32) if name == "master_param" else state_dtypes[i]
                if a.shape != p.shape or a.dtype != dtype:
                    raise InvalidArgumentError(f"state[{key!r}][{name!r}] is {a.dtype}{list(a.shape)}, expected {dtype}{list(p.shape)}")
            loaded.append((i, arrays))
        # Everything checked: now apply.
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.maximize, self.amsgrad = flags["maximize"], amsgrad
        self.stochastic_rounding, self.seed = bool(stochastic), seed
        self._steps = steps
        self._init_state()
        for i, arrays in loaded:
            np.copyto(self._exp_avgs[i], arrays[0])
            np.copyto(self._exp_avg_sqs[i], arrays[1])
            if amsgrad:
                np.copyto(self._max_exp_avg_sqs[i], arrays[2])
            if len(arrays) > len(keys):
                np.copyto(self._masters[i], arrays[-1])


def _state_index(key, n):
    """A state_dict key as a param number in [0, n): an int, or an int's decimal string."""
    if isinstance(key, str) and key.isdecimal():
        index = int(key)
    elif isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)):
        raise InvalidArgumentError(f"state_dict key {key!r} is not a param number")
    else:
        index = int(key)
    if not 0 <= index < n:
        raise InvalidArgumentError(f"state_dict key {key!r} is out of range for {n} params")
    return index


def _whole_step(value, i):
    """A step count as torch keeps it (an int, or a float or 0-d array holding a whole number)."""
    name = f"state[{i}]['step']"
    if getattr(value, "shape", None) == () and hasattr(value, "item"):
        value = value.item()  # a 0-d array or a torch tensor, as torch's state_dict holds it
    if isinstance(value, float):
        if not (math.isfinite(value) and float(value).is_integer()):
            raise InvalidArgumentError(f"{name} must be a whole number, got {value}")
        value = int(value)
    return _checks.positive_int(value, name)


class AdamW(Adam):
    """Adam with decoupled weight decay (``p *= 1 - lr*weight_decay``), default 1e-2."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, *,
                 amsgrad=False, maximize=False, state_dtype=None, master_weights=False,
                 stochastic_rounding=False, seed=0):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad=amsgrad, maximize=maximize,
                         state_dtype=state_dtype, master_weights=master_weights,
                         stochastic_rounding=stochastic_rounding, seed=seed)
