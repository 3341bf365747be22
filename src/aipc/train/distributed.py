"""Data parallel training inside a torchrun worker: DDP (gloo on CPU, nccl on CUDA) or FSDP2.

Every rank computes the same data order (``packing.Order``) and takes its own micro-batches; the
loss is normalized by the global count of target tokens, so DDP's gradient average times the world
size equals the single-process gradient of the same global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    local_rank: int = 0
    world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env() -> Dist:
    """Rank and world size as torchrun sets them (single process when absent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Dist(rank=int(os.environ.get("RANK", "0")), local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                world=world)


def init(dist: Dist, device_kind: str) -> None:
    """Join the process group: nccl for CUDA, xccl for XPU, gloo otherwise."""
    if not dist.enabled:
        return
    import torch
    import torch.distributed as td

    if td.is_initialized():
        return
    backend = {"cuda": "nccl", "xpu": "xccl"}.get(device_kind, "gloo")
    if device_kind == "cuda":
        torch.cuda.set_device(dist.local_rank)
    td.init_process_group(backend=backend)


def shutdown(dist: Dist) -> None:
    if dist.enabled:
        import torch.distributed as td

        if td.is_initialized():
            td.destroy_process_group()


def wrap(module, dist: Dist, *, fsdp: bool, device: str):
    """The training module wrapped for data parallelism (unchanged in a single process)."""
    if not dist.enabled:
        return module
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        for layer in _blocks(module):
            fully_shard(layer)
        fully_shard(module)
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [int(device.split(":")[1])] if ":" in device else None
    return DDP(module, device_ids=ids)


def _blocks(module) -> list:
    """The repeated transformer blocks (ModuleLists of the decoder), each sharded on its own."""
    from torch import nn

    for m in module.modules():
        if isinstance(m, nn.ModuleList) and len(m) > 1 and all(type(x) is type(m[0]) for x in m):
            return list(m)
    return []


def all_reduce_sum(values: list[float], dist: Dist, device: str) -> list[float]:
    """Element-wise sum of ``values`` over ranks."""
    if not dist.enabled:
        return values
    import torch
    import torch.distributed as td

    t = torch.tensor(values, dtype=torch.float64, device=device)
    td.all_reduce(t)
    return t.tolist()


def gather_objects(obj, dist: Dist) -> list:
    """Every rank's ``obj`` (on every rank)."""
    if not dist.enabled:
        return [obj]
    import torch.distributed as td

    out = [None] * dist.world
    td.all_gather_object(out, obj)
    return out


def barrier(dist: Dist) -> None:
    if dist.enabled:
        import torch.distributed as td

        td.barrier()


def full_state(model, optimizer, *, fsdp: bool) -> tuple[dict, dict]:
    """(trainable weights by name, optimizer state) gathered in full (collective under FSDP)."""
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        msd, osd = get_state_dict(model, optimizer, options=opts)
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        return {k: v for k, v in msd.items() if k in names}, osd
    weights = {n: p for n, p in model.named_parameters() if p.requires_grad}
    return weights, optimizer.state_dict()


def load_full_state(model, optimizer, weights: dict, optim_state: dict, *, fsdp: bool) -> None:
    """Restore what :func:`full_state` gathered."""
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        opts = StateDictOptions(full_state_dict=True, strict=False)
        set_state_dict(model, optimizer, model_state_dict=weights, optim_state_dict=optim_state, options=opts)
        return
    result = model.load_state_dict(weights, strict=False)
    if result.unexpected_keys:
        from aipc.errors import AipcError

        raise AipcError(f"checkpoint weights do not fit this model (unexpected {result.unexpected_keys[0]}); "
                        "resume with the model and method the run started with")
    optimizer.load_state_dict(optim_state)
