"""Device choice and DistributedDataParallel: the only place the trainers touch torch.distributed set-up.

Under `torchrun` (WORLD_SIZE > 1) every process joins one group (nccl on CUDA, gloo on CPU); rank 0 writes files.
Outside a group every helper here is a no-op, so the same code runs on one CPU, one GPU or many.
"""

import logging
import os

import torch
import torch.distributed as dist
from torch import nn

from i3d.config import Config

log = logging.getLogger(__name__)


def setup_device(cfg: Config) -> tuple[torch.device, int, int]:
    """(device, rank, world). Under torchrun (WORLD_SIZE > 1) joins the process group: nccl on CUDA, else gloo."""
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    cuda = cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available())
    if cuda and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but no CUDA device is visible; use --set train.device=cpu")
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    elif cfg.train.cpu_threads:
        torch.set_num_threads(cfg.train.cpu_threads)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", init_method="env://")
    if cfg.train.amp != "none" and not cuda:
        log.warning("train.amp=%s needs CUDA; training in float32 on %s", cfg.train.amp, device)
    return device, rank, world


def world_size() -> int:
    """Processes in the group (1 outside one)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 outside a group)."""
    return dist.get_rank() if dist.is_initialized() else 0


def all_reduce(x: torch.Tensor) -> torch.Tensor:
    """Sum `x` over every process, in place; returns it (unchanged outside a group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return x
    if dist.get_backend() == "nccl" and not x.is_cuda:  # NCCL reduces CUDA tensors only (the epoch sums are on the CPU)
        y = x.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(y)
        return x.copy_(y)
    dist.all_reduce(x)
    return x


def broadcast_buffers(module: nn.Module, src: int = 0) -> None:
    """Copy rank `src`'s buffers (batch-norm statistics) to every rank, as DDP's forward does before each step."""
    if dist.is_initialized():
        for buffer in module.buffers():
            dist.broadcast(buffer, src)


def wrap_ddp(model: nn.Module, device: torch.device, dropout_seed: int, resume: bool) -> nn.Module:
    """DistributedDataParallel; DDP broadcasts rank 0's weights, then each rank draws its own dropout masks.

    Parameters with requires_grad=False (a distillation teacher) are left alone by DDP. On resume the RNG states
    just restored from the checkpoint are kept instead of reseeding.
    """
    wrapped = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if not resume:
        torch.manual_seed(dropout_seed)
    return wrapped
