"""tensorpress.torch.AdamW as the optimizer_class of torch.distributed.optim.ZeroRedundancyOptimizer
on 2 gloo processes (tests/zero_worker.py), with parameters_as_bucket_view off and on, on float32
params and on bfloat16 params with float32 master weights.

Each rank trains a small MLP on its half of a batch; the grads are averaged across ranks as DDP
does (float32 sum / 2). The single-process references here compute each half's grads the same
way, so the grads agree bit for bit, and:

The first layer's weight is frozen for one step: ZeRO then rebuilds its buckets (twice), so
with parameters_as_bucket_view the params move to new memory mid-run, and that param's step
count lags the others'.

- against tensorpress.torch.AdamW in one process (same param groups): every rank's final
  params, the consolidated state_dict (steps, moments, masters) and a run resumed midway from a
  consolidated state_dict are bit for bit equal: ZeRO only decides which rank updates which
  param, and our update of a param does not depend on the call it is in;
- against torch.optim.AdamW in one process: float32 params within RTOL * |p| + PARAM_ATOL * lr
  (the bound of tests/test_torch_adam.py: our op order is torch's single-tensor order without
  FMAs, so results differ by float32 rounding; measured: the largest difference is 0.13 of
  the bound). bf16 with masters: torch.optim.AdamW on float32 masters, the bf16 model's params
  set to the masters rounded before each forward pass; our masters within the same float32
  bound (measured 0.12 of it), our bf16 params within 1 ulp of torch's masters rounded
  (measured 0: identical).

Both ranks run in one pair of processes for all four configurations (about 10-20 s, most of it
starting Python and torch; the Numba backend compiles its kernels in each worker).
"""

import copy
import os
import subprocess
import sys

import pytest
import torch

import tensorpress as tp
import zero_worker as zw
from tensorpress.torch import AdamW

WORLD = 2
RTOL = 1e-6
PARAM_ATOL = 1e-5
LR_MAX = 2 * zw.LR  # the second group's
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zero_worker.py")
TIMEOUT = 300  # seconds; a hung collective must not hang CI


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Every rank's results, from one run of the two workers."""
    tmp = tmp_path_factory.mktemp("zero")
    init = f"file://{tmp / 'rendezvous'}"
    outs = [tmp / f"rank{r}.pt" for r in range(WORLD)]
    procs = [subprocess.Popen([sys.executable, WORKER, str(r), str(WORLD), init, str(outs[r])],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for r in range(WORLD)]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=TIMEOUT)[0].decode(errors="replace"))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for r, (p, log) in enumerate(zip(procs, logs)):
        assert p.returncode == 0, f"rank {r} failed:\n{log[-4000:]}"
    return [torch.load(out, weights_only=True) for out in outs]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: the same grads bit for bit
    yield
    torch.set_num_threads(before)


def averaged_grads(model, dtype):
    """The ranks' averaged grads, computed in one process: each shard's grads in float32, summed
    and halved as the workers' all_reduce does."""
    shards = []
    for r in range(WORLD):
        model.zero_grad(set_to_none=True)
        zw.shard_loss(model, r, WORLD, dtype).backward()
        shards.append([None if p.grad is None else p.grad.float() for p in model.parameters()])
    return [None if a is None else a + b for a, b in zip(*shards)]


def tensorpress_reference(config):
    dtype = config["dtype"]
    model = zw.make_model(dtype)
    opt = AdamW(zw.param_groups(model), **config["options"])
    for step in range(zw.STEPS):
        zw.set_trainable(model, step)
        for p, summed in zip(model.parameters(), averaged_grads(model, dtype)):
            if summed is not None:
                zw.set_averaged_grad(p, summed, WORLD)
        opt.step()
    return list(model.parameters()), opt.state_dict()


def torch_reference(config):
    """torch.optim.AdamW on float32 masters of the model's params (the params themselves for
    float32), the model's params set to the masters (rounded) before each forward pass."""
    dtype = config["dtype"]
    model = zw.make_model(dtype)
    masters = {p: p.detach().float().requires_grad_() for p in model.parameters()}
    groups = [dict(g, params=[masters[p] for p in g["params"]]) for g in zw.param_groups(model)]
    options = {k: v for k, v in config["options"].items() if k not in ("master_weights", "state_dtype")}
    opt = torch.optim.AdamW(groups, **options)
    for step in range(zw.STEPS):
        with torch.no_grad():
            for p, m in masters.items():
                p.copy_(m)
        zw.set_trainable(model, step)
        for m, summed in zip(masters.values(), averaged_grads(model, dtype)):
            m.grad = None if summed is None else summed / WORLD
        opt.step()
    return list(masters.values())


def same_bits(a, b):
    a, b = a.detach(), b.detach()
    return (a.dtype == b.dtype and a.shape == b.shape
            and torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8)))


def ordered(t):
    b = t.detach().view(torch.int16).int()
    return torch.where(b < 0, -(b & 0x7FFF), b)


CONFIGS = list(zw.CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_zero_equals_a_single_process_run_bit_for_bit(ranks, name):
    config = zw.CONFIGS[name]
    params, state_dict = tensorpress_reference(config)
    for r in range(WORLD):
        got = ranks[r][name]
        assert all(same_bits(a, b) for a, b in zip(got["params"], params)), f"rank {r}"
        assert all(same_bits(a, b) for a, b in zip(got["resumed"], params)), f"rank {r} resumed"
    consolidated = ranks[0][name]["state_dict"]
    assert consolidated["state"].keys() == state_dict["state"].keys() == set(range(len(params)))
    for i, state in state_dict["state"].items():
        assert consolidated["state"][i].keys() == state.keys()
        for key, value in state.items():
            assert same_bits(consolidated["state"][i][key], value), (i, key)
    if config["options"].get("master_weights"):
        for i, p in enumerate(params):
            master = consolidated["state"][i]["master_param"]
            assert master.dtype == torch.float32 and same_bits(master.to(p.dtype), p)
    for group, reference in zip(consolidated["param_groups"], state_dict["param_groups"]):
        assert group["lr"] == reference["lr"] and group["weight_decay"] == reference["weight_decay"]


@pytest.mark.parametrize("name", CONFIGS)
def test_zero_follows_torch_adamw(ranks, name):
    config = zw.CONFIGS[name]
    masters = torch_reference(config)
    got = ranks[0][name]
    if config["dtype"] is torch.float32:
        ours = got["params"]
    else:
        ours = [got["state_dict"]["state"][i]["master_param"] for i in range(len(masters))]
        for p, m in zip(got["params"], masters):
            assert (ordered(p) - ordered(m.detach().to(p.dtype))).abs().max().item() <= 1
    for a, m in zip(ours, masters):
        m = m.detach()
        excess = ((a - m).abs() - (RTOL * m.abs() + PARAM_ATOL * LR_MAX)).max().item()
        assert excess <= 0, excess


def test_the_workers_ran_on_this_backend(ranks):
    assert [r["backend"] for r in ranks] == [tp.backend] * WORLD


def test_a_rank_holds_empty_param_groups(ranks):
    """ZeRO gives each rank's local optimizer every param group, with the params it owns: the
    group added later (one param) is empty on one rank, and the params of the others split."""
    for name in CONFIGS:
        sizes = [ranks[r][name]["local_sizes"] for r in range(WORLD)]
        assert all(len(s) == 3 for s in sizes)
        assert [sum(col) for col in zip(*sizes)] == [2, 1, 1]
        assert any(0 in s for s in sizes)


def test_consolidated_state_dict_loads_into_torch_adamw(ranks):
    """The consolidated float32 state has torch.optim.AdamW's layout: it loads, and one more
    step from it agrees with ours to the float32 bound."""
    config = zw.CONFIGS["f32-buckets"]
    state_dict = ranks[0]["f32-buckets"]["state_dict"]
    start = ranks[0]["f32-buckets"]["params"]
    models = [zw.make_model(torch.float32) for _ in range(2)]
    for model in models:
        with torch.no_grad():
            for p, s in zip(model.parameters(), start):
                p.copy_(s)
    theirs = torch.optim.AdamW(zw.param_groups(models[0]), **config["options"])
    ours = AdamW(zw.param_groups(models[1]), **config["options"])
    # copies: load_state_dict shares tensors of the right dtype with the dict it loads
    theirs.load_state_dict(copy.deepcopy(state_dict))
    ours.load_state_dict(copy.deepcopy(state_dict))
    for model, opt in zip(models, (theirs, ours)):
        for p, summed in zip(model.parameters(), averaged_grads(model, torch.float32)):
            zw.set_averaged_grad(p, summed, WORLD)
        opt.step()
    for a, b in zip(models[1].parameters(), models[0].parameters()):
        excess = ((a - b).abs() - (RTOL * b.abs() + PARAM_ATOL * LR_MAX)).max().item()
        assert excess <= 0
    steps = [theirs.state[p]["step"].item() for p in models[0].parameters()]
    assert steps == [zw.STEPS] + [zw.STEPS + 1] * 3  # the first was frozen for one step
