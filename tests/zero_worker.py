"""One rank of tests/test_zero_offload.py: ZeroRedundancyOptimizer(optimizer_class=
tensorpress.torch.AdamW) on a gloo process group, data-parallel over a small MLP.

    python tests/zero_worker.py RANK WORLD_SIZE INIT_METHOD OUT_FILE

Runs every configuration of CONFIGS and saves, per configuration, the final params, the
state_dict consolidated at the end (rank 0 only), the params of a second ZeRO resumed from the
state_dict consolidated midway, and the sizes of the rank's local param groups, to OUT_FILE
(torch.save). The test imports this module for the model, the data and the gradient averaging,
which its single-process references share.
"""

import io
import sys

import torch

# --- shared with the test ----------------------------------------------------------------------

STEPS = 8
RESUME_AT = 4
# The first layer's weight is frozen for this step: ZeRO rebuilds its buckets when trainability
# changes (before this step and the next), so with bucket views the params move mid-run; the
# frozen param's step count then lags, which splits a step into several native calls.
FROZEN_STEP = 2
BATCH = 64
LR = 1e-2

# name -> the ZeRO options and the params' dtype
CONFIGS = {
    "f32-flat": dict(dtype=torch.float32, bucket_view=False,
                     options=dict(lr=LR, weight_decay=1e-2, amsgrad=True)),
    "f32-buckets": dict(dtype=torch.float32, bucket_view=True,
                        options=dict(lr=LR, weight_decay=1e-2, amsgrad=True)),
    # bf16 params with float32 masters and float32 states: the masters take the float32 step
    "bf16-master-flat": dict(dtype=torch.bfloat16, bucket_view=False,
                             options=dict(lr=LR, weight_decay=1e-2, master_weights=True,
                                          state_dtype=torch.float32)),
    "bf16-master-buckets": dict(dtype=torch.bfloat16, bucket_view=True,
                                options=dict(lr=LR, weight_decay=1e-2, master_weights=True,
                                             state_dtype=torch.float32)),
}


def make_model(dtype):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
    return model.to(dtype)


def data():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, 16, generator=gen)
    return x, torch.randn(BATCH, 4, generator=gen) + x[:, :4]


def shard_loss(model, rank, world, dtype):
    """The loss of this rank's rows of the batch (contiguous shards, as a DistributedSampler
    without shuffling would give them), computed in float32."""
    x, y = data()
    n = BATCH // world
    x, y = x[rank * n:(rank + 1) * n], y[rank * n:(rank + 1) * n]
    return torch.nn.functional.mse_loss(model(x.to(dtype)).float(), y)


def set_trainable(model, step):
    model[0].weight.requires_grad_(step != FROZEN_STEP)


def param_groups(model):
    """Two groups at construction, a third (one param) to add with add_param_group."""
    w1, b1, w2, b2 = model.parameters()
    return [{"params": [w1, b1]}, {"params": [w2], "lr": 2 * LR}, {"params": [b2], "weight_decay": 0.0}]


def set_averaged_grad(p, summed, world):
    """p.grad = the float32 sum of the ranks' grads / world (exact: world is 2), as the param's
    dtype for float32 params; half params take the float32 grad as it is."""
    g = summed / world
    if p.dtype != torch.float32:
        p.grad_dtype = None  # torch checks a grad's dtype against it
    p.grad = g


# --- the worker --------------------------------------------------------------------------------

def averaged_grads(model, rank, world, dtype):
    """This rank's grads of its shard of the batch, averaged across ranks as DDP does."""
    import torch.distributed as dist

    model.zero_grad(set_to_none=True)
    shard_loss(model, rank, world, dtype).backward()
    for p in model.parameters():
        if p.grad is None:  # frozen
            continue
        g = p.grad.float()  # half grads are summed in float32 (exact for two ranks' values)
        dist.all_reduce(g)
        set_averaged_grad(p, g, world)


def build(config, model):
    from torch.distributed.optim import ZeroRedundancyOptimizer

    from tensorpress.torch import AdamW

    groups = param_groups(model)
    zero = ZeroRedundancyOptimizer(groups[:-1], optimizer_class=AdamW,
                                   parameters_as_bucket_view=config["bucket_view"], **config["options"])
    # A group added afterwards holds a single param: the other rank's local optimizer gets an
    # empty group (and, with bucket views, every param moves into rebuilt buckets).
    zero.add_param_group(groups[-1])
    return zero


def consolidated(zero, rank, world):
    """The full state_dict on every rank (ZeRO consolidates on one rank at a time)."""
    result = None
    for to in range(world):
        zero.consolidate_state_dict(to=to)
        if to == rank:
            result = zero.state_dict()
    return result


def run(config, rank, world):
    dtype = config["dtype"]
    model = make_model(dtype)
    zero = build(config, model)
    resumed_model = make_model(dtype)
    resumed = None
    for step in range(STEPS):
        if step == RESUME_AT:
            # A checkpoint: a fresh model and ZeRO load the params and the consolidated state,
            # then train alongside the original. Through torch.save / torch.load: a state_dict
            # holds the live state tensors (ZeRO's consolidation keeps this rank's by reference),
            # which load_state_dict would share, not copy, between the two optimizers.
            buf = io.BytesIO()
            torch.save(consolidated(zero, rank, world), buf)
            buf.seek(0)
            state = torch.load(buf, weights_only=True)
            resumed_model.load_state_dict(model.state_dict())
            resumed = build(config, resumed_model)
            resumed.load_state_dict(state)
        set_trainable(model, step)
        averaged_grads(model, rank, world, dtype)
        zero.step()
        if resumed is not None:
            set_trainable(resumed_model, step)
            averaged_grads(resumed_model, rank, world, dtype)
            resumed.step()
    state = consolidated(zero, rank, world)
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "resumed": [p.detach().clone() for p in resumed_model.parameters()],
        "state_dict": state if rank == 0 else None,
        "local_sizes": [len(g["params"]) for g in zero.optim.param_groups],
    }


def main():
    import torch.distributed as dist

    rank, world, init_method, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    torch.set_num_threads(1)  # the same grads, bit for bit, as the test's reference
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    try:
        results = {name: run(config, rank, world) for name, config in CONFIGS.items()}
    finally:
        dist.destroy_process_group()
    import tensorpress

    results["backend"] = tensorpress.backend  # TENSORPRESS_BACKEND is inherited from the test
    torch.save(results, out)


if __name__ == "__main__":
    main()
