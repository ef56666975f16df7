"""Process-group set-up and model wrapping: one process, DDP, or FSDP2, from torchrun's environment.

The same code runs a laptop demo (no process group), CPU tests (gloo, 2 processes) and GPU clusters
(NCCL, torchrun's rendezvous across nodes). Scale is configuration, not a fork.
"""

from __future__ import annotations

import os
import signal
import socket
import uuid
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

# The exit code of a run stopped by SIGTERM / SIGUSR1 after writing its checkpoint: "run me again".
# 75 is sysexits' EX_TEMPFAIL; scripts/slurm/train.sbatch requeues the job when the run was signalled.
REQUEUE_EXIT = 75
SHARED_CHECK = ".jalm-shared-check"


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto", timeout_minutes: float | None = None) -> DistEnv:
    """Read torchrun's variables; start a process group when there is more than one process.

    `timeout_minutes`: how long a collective may wait for a missing rank before the run fails (and
    torchrun's --max-restarts, or a requeue, takes over); None keeps torch's default."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if dev.type == "cuda" else "gloo",
            device_id=dev if dev.type == "cuda" else None,
            timeout=timedelta(minutes=timeout_minutes) if timeout_minutes else None,
        )
    return DistEnv(rank, world, local, dev)


def teardown() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.AVG if value.is_cuda else dist.ReduceOp.SUM)
        if not value.is_cuda:
            value /= dist.get_world_size()
    return value


def broadcast_object(obj):
    if not dist.is_initialized():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def transformer_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks FSDP2 wraps one by one: the model family says where they are (jalm.model.families)."""
    from jalm.model.build import transformer_blocks as family_blocks

    return family_blocks(model)


def shard_groups(env: DistEnv, shard_group_size: int = 0) -> tuple[int, int]:
    """(replicas, shard group size) of hybrid sharding: shard inside a group of `shard_group_size`
    processes (0: the GPUs of a node, torchrun's LOCAL_WORLD_SIZE), replicate across the groups."""
    from jalm.errors import JalmError

    size = shard_group_size or int(os.environ.get("LOCAL_WORLD_SIZE", env.world_size))
    if size < 1 or env.world_size % size:
        raise JalmError(f"--shard-group-size {size} does not divide the {env.world_size} processes")
    return env.world_size // size, size


def spans_nodes(env: DistEnv) -> bool:
    """More processes than torchrun started on this node: the run crosses nodes."""
    return env.world_size > int(os.environ.get("LOCAL_WORLD_SIZE", env.world_size))


def wrap_model(
    model: torch.nn.Module, env: DistEnv, parallel: str, bf16: bool, shard_group_size: int = 0
) -> torch.nn.Module:
    """DDP (replicated weights), FSDP2 (`fully_shard` per block, then the root) or HSDP (FSDP2 on a 2-D
    mesh: each parameter sharded inside a group, the groups replicas of each other)."""
    if not env.distributed or parallel == "none":
        return model
    if parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(
            model, device_ids=[env.local_rank] if env.device.type == "cuda" else None
        )
    if parallel in ("fsdp", "hsdp"):
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        if parallel == "hsdp":
            # Gradients are reduce-scattered inside a group (NVLink) and only the shards are all-reduced
            # across groups (the network): 1/group of the traffic FSDP over all processes sends across.
            shape = shard_groups(env, shard_group_size)
            mesh = init_device_mesh(env.device.type, shape, mesh_dim_names=("replicate", "shard"))
        else:
            mesh = init_device_mesh(env.device.type, (env.world_size,))
        policy = (
            MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
            if bf16
            else MixedPrecisionPolicy()
        )
        for block in transformer_blocks(model):
            fully_shard(block, mesh=mesh, mp_policy=policy)
        fully_shard(model, mesh=mesh, mp_policy=policy)
        return model
    raise ValueError(f"unknown parallel mode {parallel!r}")


def accumulating(model: torch.nn.Module, last: bool) -> AbstractContextManager:
    """Set up one micro-batch's forward (and, for FSDP2, its backward): no gradient traffic before the last.

    DDP: `no_sync` on every micro-batch but the last (gradients accumulate locally, one all-reduce).
    FSDP2: on micro-batches before the last, no reduce-scatter (`set_requires_gradient_sync(False)`: the
    unsharded gradients accumulate) and no resharding after forward or backward, so the parameters are
    all-gathered once at the first forward and stay whole until the last micro-batch. The last one runs
    with FSDP2's defaults (reshard after forward, reshard after backward, reduce-scatter), so a step with
    N micro-batches all-gathers and reduce-scatters exactly what a step with one does, and the peak of
    the last micro-batch is the usual one. The price: during accumulation each GPU holds the whole
    parameters and unsharded gradients (ZeRO-2-like); the plan's memory arithmetic counts them.
    """
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2 (fully_shard) module
        model.set_requires_gradient_sync(last)
        model.set_reshard_after_backward(last)
        # The blocks only: FSDP2 keeps the root unsharded after forward (backward needs it at once).
        for module in model.modules():
            if module is not model and hasattr(module, "set_reshard_after_forward"):
                module.set_reshard_after_forward(last, recurse=False)
        return nullcontext()
    if hasattr(model, "no_sync") and not last:
        return model.no_sync()
    return nullcontext()


def check_shared_dir(path: Path, env: DistEnv) -> None:
    """Every rank must see rank 0's run directory (a filesystem all nodes share): checkpoints are renamed
    into place by rank 0 alone, so a node-local --out would silently lose the other nodes' shards."""
    from jalm.errors import JalmError

    if not dist.is_initialized():
        return
    path = Path(path)
    token = broadcast_object(uuid.uuid4().hex if env.is_main else None)
    marker = path / SHARED_CHECK
    if env.is_main:
        path.mkdir(parents=True, exist_ok=True)
        marker.write_text(token, encoding="utf-8")
    barrier()
    try:
        seen = marker.read_text(encoding="utf-8") == token
    except OSError:
        seen = False
    views: list = [None] * env.world_size
    dist.all_gather_object(views, (env.rank, socket.gethostname(), seen))
    barrier()
    if env.is_main:
        marker.unlink(missing_ok=True)
    blind = [(rank, host) for rank, host, ok in views if not ok]
    if blind:
        rank, host = blind[0]
        raise JalmError(
            f"{path}: rank {rank} on {host} does not see rank 0's run directory there "
            f"({len(blind)} of {env.world_size} ranks); --out must be on a filesystem every node shares"
        )


class StopRequest:
    """SIGTERM / SIGUSR1 on any rank asks every rank to stop after the step in flight (a preemption or a
    scheduler's warning before the time limit). `agreed()` is one tiny all-reduce, once per step."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self, env: DistEnv):
        self.env, self.received, self.previous = env, 0, {}
        for sig in self.SIGNALS:
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals to whoever owns them
                break

    def _handle(self, signum, frame) -> None:
        if self.received:  # a second signal: stop waiting for the step, die as the signal asks
            self.close()
            os.kill(os.getpid(), signum)
        self.received = signum

    def agreed(self) -> int:
        """The signal some rank received (0 if none): every rank gets the same answer."""
        if not dist.is_initialized():
            return self.received
        flag = torch.tensor([self.received], device=self.env.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())

    def close(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}


def all_ranks(flag: bool, env: DistEnv) -> bool:
    """True when `flag` holds on every rank (every rank gets the same answer)."""
    if not dist.is_initialized():
        return flag
    value = torch.tensor([int(flag)], device=env.device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def any_rank(flag: bool, env: DistEnv) -> bool:
    """True when `flag` holds on some rank (every rank gets the same answer)."""
    return not all_ranks(not flag, env)
