"""The run's plan before the run: parameters, memory per device, tokens, epochs and time, from arithmetic.

`jalm train ... --plan` builds the model on the meta device (no memory), counts its parameters exactly and
prints what the run will hold on each device and how long it would take at a stated MFU on a named GPU.
`jalm train` itself runs the same arithmetic before it allocates anything and refuses a run that clearly
cannot fit, in one line, instead of dying in the allocator.

What jalm holds per device (N parameters, P processes, S = P under FSDP2 and 1 otherwise):
  weights     4N/S   fp32 master weights (FSDP2 shards them; DDP and a single process keep full replicas)
  gradients   4N/S   fp32, like the weights; DDP adds 4N of gradient buckets (gradient_as_bucket_view off)
  optimizer   8N/S   AdamW's two fp32 moments; FSDP2's foreach AdamW briefly adds 4N/S in its step
  bf16 copies 2M     autocast's bf16 casts of the M matrix weights, kept for the backward pass (not FSDP2)
  gathered           FSDP2: bf16 (or fp32) unsharded parameters of the root (embeddings) and 2 blocks, and
                     one unsharded gradient in both dtypes while it is reduce-scattered
  activations        per token: the tensors autograd saves (below), × micro_batch_size × seq_len
  logits      12V    per token: fp32 log-probabilities saved by the loss + two fp32 gradients in its backward

Saved tensors per token of one block (h hidden, f FFN, a heads; measured with saved-tensor hooks on
transformers' GPT-NeoX and GPT-2 blocks with SDPA, the LayerNorms in fp32 under autocast):
  GPT-NeoX  bf16: 22h + 4f + 4a + 16   fp32: 36h + 8f + 4a + 16
  GPT-2     bf16: 24h + 4f + 4a + 16   fp32: 40h + 8f + 4a + 16
plus outside the blocks 6h + 28 (bf16) or 8h + 28 (fp32) and the logits' 4V. With activation
checkpointing a block keeps only its input (4h, or 2h when FSDP2 computes in bf16); its recomputation in
the backward pass starts after the loss's backward has freed its 12V, which is larger than any block's.

The peak adds the larger of (forward/backward transients) and the optimizer step's scratch to what stays:
weights, gradients, moments (gradients counted in full, though they only fill as activations drain: the
estimate errs high). On CPU the RSS also holds what glibc's malloc keeps of freed tensors (0.4 × the
activations and logits) and the kernels the first step touches (24 MiB), both fitted to measurements.

Time: PaLM's model FLOPs per token, 6N + 12·L·h·T (as `mfu()` logs them), × tokens / (P × peak × MFU).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from jalm.errors import JalmError
from jalm.memory import machine_memory

GIB = 1024**3
# Refuse a run only when the estimate exceeds the device's memory by more than this: the estimate is
# within 25 % of the measured peak for the small presets on CPU (benchmarks/plan_memory.py).
REFUSE_MARGIN = 0.25
# The GPUs jalm knows, by the exact name `torch.cuda.get_device_name` (nvidia-smi) reports: the model,
# its dense bf16 peak from the data sheet (half the "with sparsity" figure), and its memory in MiB as
# nvidia-smi reports it. Exact names, never substrings: an H100 NVL or PCIe must not get the SXM peak,
# an L40S must not match L4. An unknown name has no peak (MFU and the time estimate say "unknown").
GPU_MODELS: dict[str, tuple[str, float, int]] = {
    "NVIDIA H100 80GB HBM3": ("H100 SXM", 989e12, 81559),
    "NVIDIA H100 PCIe": ("H100 PCIe", 756e12, 81559),
    "NVIDIA H100 NVL": ("H100 NVL", 835e12, 95830),
    "NVIDIA H200": ("H200 SXM", 989e12, 143771),
    "NVIDIA H200 NVL": ("H200 NVL", 835e12, 143771),
    "NVIDIA GH200 480GB": ("GH200", 989e12, 97871),
    "NVIDIA B200": ("B200", 2250e12, 183359),
    "NVIDIA A100-SXM4-80GB": ("A100 SXM 80GB", 312e12, 81920),
    "NVIDIA A100-SXM4-40GB": ("A100 SXM 40GB", 312e12, 40960),
    "NVIDIA A100 80GB PCIe": ("A100 PCIe 80GB", 312e12, 81920),
    "NVIDIA A100-PCIE-40GB": ("A100 PCIe 40GB", 312e12, 40960),
    "NVIDIA L40S": ("L40S", 362e12, 46068),
    "NVIDIA L40": ("L40", 181e12, 46068),
    "NVIDIA L4": ("L4", 121e12, 23034),
    "NVIDIA A10": ("A10", 125e12, 23028),
}
# What --gpu accepts (case-insensitive, exactly): the short names people write, to the reported name.
GPU_ALIASES = {
    "H100": "NVIDIA H100 80GB HBM3",
    "H100 SXM": "NVIDIA H100 80GB HBM3",
    "H100 PCIE": "NVIDIA H100 PCIe",
    "H100 NVL": "NVIDIA H100 NVL",
    "H200": "NVIDIA H200",
    "H200 NVL": "NVIDIA H200 NVL",
    "GH200": "NVIDIA GH200 480GB",
    "B200": "NVIDIA B200",
    "A100": "NVIDIA A100-SXM4-80GB",
    "A100-80GB": "NVIDIA A100-SXM4-80GB",
    "A100-40GB": "NVIDIA A100-SXM4-40GB",
    "A100 PCIE": "NVIDIA A100 80GB PCIe",
    "A100-40GB PCIE": "NVIDIA A100-PCIE-40GB",
    "L40S": "NVIDIA L40S",
    "L40": "NVIDIA L40",
    "L4": "NVIDIA L4",
    "A10": "NVIDIA A10",
}
RUNTIME_BYTES = {"cuda": 1 * GIB, "cpu": 350 * 1024**2}  # CUDA context + NCCL; the Python process with torch
# On CPU the process's RSS also holds the kernels and code the first step touches, and what glibc's malloc
# keeps of freed tensors in its heap (its mmap threshold rises to the largest freed block, up to 32 MiB).
# Both constants are fitted to benchmarks/plan_memory.py's 12 runs (test, mini, tiny × bf16/fp32 × with and
# without checkpointing); the tensor arithmetic itself is checked against autograd and torch's MemTracker.
CPU_KERNELS_BYTES = 24 * 1024**2
CPU_ALLOCATOR_SLACK = 0.4


def gpu_model(name: str, aliases: bool = False) -> tuple[str, float, int] | None:
    """(model, dense bf16 peak, MiB) of a GPU by its reported name (case and spacing aside), or with
    `aliases` also by a --gpu short name; None when unknown."""
    upper = " ".join(name.split()).upper()
    full = next((key for key in GPU_MODELS if key.upper() == upper), None)
    if full is None and aliases:
        full = GPU_ALIASES.get(upper.removeprefix("NVIDIA "))
    return GPU_MODELS[full] if full else None


def peak_flops(device_name: str) -> float:
    """The dense bf16 peak of a GPU by the exact name it reports (0.0 when unknown, e.g. a CPU)."""
    model = gpu_model(device_name)
    return model[1] if model else 0.0


@dataclass(frozen=True)
class Hardware:
    """Where each process runs: a GPU (named, with its memory and peak) or this machine's CPU."""

    name: str
    kind: str  # "cuda" or "cpu"
    memory: int  # bytes per device (for a CPU: the machine's RAM, shared by its processes)
    peak_flops: float  # dense bf16 FLOP/s; 0 when unknown


def gpu(spec: str) -> Hardware:
    """`--gpu NAME` or `NAME:GIB` (a GPU_ALIASES name or a reported name, or any name with its memory)."""
    name, _, gib = spec.partition(":")
    model = gpu_model(name, aliases=True)
    flops = model[1] if model else 0.0
    if gib:
        try:
            memory = int(float(gib) * GIB)
        except ValueError:
            raise JalmError(f"--gpu {spec}: the memory after ':' must be a number of GiB") from None
    else:
        if model is None:
            known = ", ".join(GPU_ALIASES)
            raise JalmError(f"--gpu {spec}: unknown GPU; name one of {known}, or give its memory as NAME:GIB")
        memory = model[2] * 1024**2
    return Hardware(name, "cuda", memory, flops)


def local_hardware(device: str = "auto") -> Hardware:
    """The device a run started here would use: its GPU (total memory, peak by name) or the CPU and RAM."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        index = int(os.environ.get("LOCAL_RANK", "0"))
        name = torch.cuda.get_device_name(index)
        return Hardware(name, "cuda", torch.cuda.get_device_properties(index).total_memory, peak_flops(name))
    return Hardware("cpu", "cpu", machine_memory(), 0.0)


@dataclass(frozen=True)
class ModelShape:
    """What the arithmetic needs from the model, counted on the meta device."""

    layout: str
    layers: int
    hidden: int
    heads: int
    ffn: int
    vocab: int
    params: int  # unique parameters (tied embeddings once)
    block_params: int  # one transformer block
    root_params: int  # outside the blocks: embeddings, final LayerNorm
    matrix_params: int  # weights autocast casts to bf16: every matmul's weight, the tied LM head included


def model_shape(preset_name: str, vocab_size: int | None) -> ModelShape:
    """Build the preset on the meta device (nothing allocated) and count its parameters."""
    import torch

    from jalm.model import build_model, get_preset, hf_config
    from jalm.train.distributed import transformer_blocks

    preset = get_preset(preset_name)
    config = hf_config(preset, vocab_size)
    model = build_model(config, "meta")
    params = sum(p.numel() for p in model.parameters())
    blocks = transformer_blocks(model)
    block = sum(p.numel() for p in blocks[0].parameters())
    position = [m.weight for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    lookups_only = sum(w.numel() for w in position if w is not model.get_output_embeddings().weight)
    matrices = sum(p.numel() for p in model.parameters() if p.ndim >= 2) - lookups_only
    return ModelShape(
        preset.layout,
        preset.layers,
        preset.hidden,
        preset.heads,
        preset.ffn,
        config.vocab_size,
        params,
        block,
        params - block * len(blocks),
        matrices,
    )


def block_bytes_per_token(shape: ModelShape, bf16: bool) -> int:
    """Bytes autograd saves per token in one block (see the module docstring for the measurement)."""
    from jalm.model.families import family

    h, f, a = shape.hidden, shape.ffn, shape.heads
    hidden_coef, ffn_coef = family(shape.layout).saved_bytes[bf16]
    return hidden_coef * h + ffn_coef * f + 4 * a + 16


def outside_bytes_per_token(shape: ModelShape, bf16: bool) -> int:
    """Saved outside the blocks per token: embedding ids, final LayerNorm, LM head input, targets."""
    return (6 if bf16 else 8) * shape.hidden + 28


@dataclass
class Plan:
    shape: ModelShape
    hardware: Hardware
    processes: int
    parallel: str  # none | ddp | fsdp (as the Trainer resolves "auto")
    bf16: bool
    checkpointing: bool
    micro_batch_size: int
    seq_len: int
    grad_accum: int
    steps: int | None  # None: the time budget decides
    mfu: float
    train_tokens: int | None = None
    time_budget_s: float | None = None
    preset_label: str = ""
    # A mixture (jalm train --data NAME=DIR:WEIGHT ...): (name, share of draws, training tokens) per source.
    sources: list[tuple[str, float, int]] = field(default_factory=list)
    memory: dict[str, tuple[int, str]] = field(default_factory=dict)  # line → (bytes, how)

    # --- tokens and time -----------------------------------------------------------------------------

    @property
    def tokens_per_micro(self) -> int:
        return self.micro_batch_size * self.seq_len

    @property
    def tokens_per_step(self) -> int:
        return self.tokens_per_micro * self.grad_accum * self.processes

    @property
    def flops_per_token(self) -> int:
        s = self.shape
        return 6 * s.params + 12 * s.layers * s.hidden * self.seq_len

    @property
    def tokens_per_s(self) -> float:
        """All processes together at the stated MFU (0 when the device's peak is unknown)."""
        return self.processes * self.hardware.peak_flops * self.mfu / self.flops_per_token

    @property
    def planned_steps(self) -> int | None:
        if self.steps is not None:
            return self.steps
        if self.tokens_per_s and self.time_budget_s:
            return max(1, int(self.time_budget_s * self.tokens_per_s / self.tokens_per_step))
        return None

    @property
    def total_tokens(self) -> int | None:
        steps = self.planned_steps
        return None if steps is None else steps * self.tokens_per_step

    @property
    def epochs(self) -> float | None:
        """Passes over the packed training windows (each window is seq_len tokens plus the next one)."""
        if self.train_tokens is None or self.total_tokens is None:
            return None
        windows = max(0, (self.train_tokens - 1) // self.seq_len)
        return self.total_tokens / (windows * self.seq_len) if windows else math.inf

    def source_epochs(self) -> list[float] | None:
        """Passes over each source's windows that the planned tokens make (its share of the draws)."""
        if self.total_tokens is None or not self.sources:
            return None
        draws = self.total_tokens / self.seq_len
        return [
            draws * share / w if (w := max(0, (tokens - 1) // self.seq_len)) else math.inf
            for _, share, tokens in self.sources
        ]

    @property
    def seconds(self) -> float | None:
        if not self.tokens_per_s or self.total_tokens is None:
            return None
        return self.total_tokens / self.tokens_per_s

    # --- memory --------------------------------------------------------------------------------------

    TRANSIENT = ("bf16 weight copies", "FSDP2 gathers", "activations", "logits", "allocator slack")
    SCRATCH = "optimizer step scratch"

    @property
    def transient_bytes(self) -> int:
        """What exists only during forward and backward (freed before the optimizer steps)."""
        return sum(b for name, (b, _) in self.memory.items() if name in self.TRANSIENT)

    @property
    def peak_bytes(self) -> int:
        """What stays, plus the larger of the forward/backward transients and the optimizer's scratch."""
        stays = sum(b for name, (b, _) in self.memory.items() if name not in (*self.TRANSIENT, self.SCRATCH))
        return stays + max(self.transient_bytes, self.memory.get(self.SCRATCH, (0, ""))[0])

    @property
    def needed_bytes(self) -> int:
        """Against the device's memory: a CPU's processes all share this machine's RAM."""
        if self.hardware.kind == "cpu":
            return self.peak_bytes * self.processes_per_machine
        return self.peak_bytes

    @property
    def processes_per_machine(self) -> int:
        return int(os.environ.get("LOCAL_WORLD_SIZE", self.processes))

    @property
    def fits(self) -> bool:
        return self.needed_bytes <= self.hardware.memory

    @property
    def refused(self) -> bool:
        return self.needed_bytes > (1 + REFUSE_MARGIN) * self.hardware.memory

    def refusal(self) -> str:
        """The one-line reason a run that clearly cannot fit is refused."""
        terms = " + ".join(f"{name} {_gib(b)}" for name, (b, _) in self.memory.items() if b)
        need = f"{terms} = {_gib(self.peak_bytes)} per process"
        if self.hardware.kind == "cpu":
            local = self.processes_per_machine
            if local > 1:
                need += f", × {local} processes on this machine = {_gib(self.needed_bytes)}"
            where = f"this machine's {_gib(self.hardware.memory)} of RAM"
        else:
            where = f"the {_gib(self.hardware.memory)} of a {self.hardware.name}"
        remedies = ["more processes with --parallel fsdp", "a smaller --micro-batch-size"]
        if not self.checkpointing:
            remedies.append("--activation-checkpointing")
        return (
            f"preset {self.preset_label} cannot fit: {need}, more than {1 + REFUSE_MARGIN:g} × {where}; "
            f"use {', '.join(remedies)} or a bigger device"
        )

    # --- the printout --------------------------------------------------------------------------------

    def describe(self) -> str:
        s, p = self.shape, self.processes
        mode = {"none": "one process", "ddp": f"DDP over {p} processes", "fsdp": f"FSDP2 over {p} processes"}
        dtype = "bf16 autocast" if self.bf16 else "float32"
        if self.bf16 and self.parallel == "fsdp":
            dtype = "bf16 (FSDP2 MixedPrecisionPolicy + autocast; fp32 reduce)"
        lines = [
            f"model: preset {self.preset_label} ({s.layout}, {s.layers} layers × {s.hidden}, {s.heads} heads, "
            f"FFN {s.ffn}, vocabulary {s.vocab:,}): {s.params:,} parameters "
            f"({s.layers} × {s.block_params:,} in blocks + {s.root_params:,} embeddings and final norm)",
            f"run: {mode[self.parallel]} on {self.hardware.name} ({_gib(self.hardware.memory)} each), {dtype}, "
            f"activation checkpointing {'on' if self.checkpointing else 'off'}",
            f"batch: {self.micro_batch_size} sequences × {self.seq_len} tokens × {self.grad_accum} micro-batch{'es' if self.grad_accum > 1 else ''} "
            f"× {p} process{'es' if p > 1 else ''} = {self.tokens_per_step:,} tokens per step",
        ]
        steps, total = self.planned_steps, self.total_tokens
        if steps is None:
            lines.append(
                f"steps: decided by the {self.time_budget_s:g} s time budget from the measured speed"
            )
        else:
            how = (
                f"from the {self.time_budget_s:g} s budget at the stated MFU, " if self.steps is None else ""
            )
            lines.append(f"steps: {how}{steps:,} × {self.tokens_per_step:,} = {_count(total)} tokens")
        epochs = self.source_epochs()
        if len(self.sources) > 1 and epochs is not None:
            lines.append(
                f"data: a mixture of {len(self.sources)} sources, {self.train_tokens:,} training tokens:"
            )
            for (name, share, tokens), e in zip(self.sources, epochs):
                lines.append(
                    f"  {name:<16} {share:7.2%} of the windows, {tokens:,} tokens "
                    f"({tokens / max(self.train_tokens, 1):.2%} of them) → {e:,.2f} epochs"
                    f"{'' if e <= 1 else ' (repeated)'}"
                )
        elif self.train_tokens is not None and self.epochs is not None:
            lines.append(
                f"data: {self.train_tokens:,} training tokens in the packed directory → {self.epochs:,.2f} "
                f"epochs over it"
            )
        lines.append(
            f"memory per {'process' if self.hardware.kind == 'cpu' else 'device'} (GiB = 2^30 bytes):"
        )
        for name, (value, how) in self.memory.items():
            lines.append(f"  {name:<24}{_gib(value):>11}   {how}")
        share = self.needed_bytes / self.hardware.memory
        if self.hardware.kind == "cpu" and self.processes_per_machine > 1:
            need = f"{self.processes_per_machine} × {_gib(self.peak_bytes)} = {_gib(self.needed_bytes)}"
        else:
            need = _gib(self.peak_bytes)
        verdict = "fits" if self.fits else ("does not fit" if self.refused else "may not fit")
        lines.append(
            f"  {'peak':<24}{_gib(self.peak_bytes):>11}   weights + gradients + optimizer + the larger of "
            f"(forward/backward transients, optimizer step scratch)"
        )
        lines.append(f"verdict: {verdict}: {need} of {_gib(self.hardware.memory)} ({share:.0%})")
        lines.append(
            f"FLOPs per token: 6N + 12·L·h·T = 6 × {s.params:,} + 12 × {s.layers} × {s.hidden} × {self.seq_len} "
            f"= {self.flops_per_token / 1e9:,.2f} GFLOP (model FLOPs; checkpointing's recompute is not counted)"
        )
        if self.seconds is None:
            reason = "no peak FLOP/s known for a CPU" if self.hardware.kind == "cpu" else "unknown GPU peak"
            lines.append(f"time: not estimated ({reason}; plan for a GPU with --gpu NAME)")
        else:
            lines.append(
                f"time: {_count(total)} tokens / ({p} × {self.hardware.peak_flops / 1e12:,.0f} TFLOP/s × MFU "
                f"{self.mfu:.2f} / {self.flops_per_token / 1e9:,.2f} GFLOP) = {_count(self.tokens_per_s)} "
                f"tokens/s → {_duration(self.seconds)}"
            )
        return "\n".join(lines)


def _gib(value: float) -> str:
    return f"{value / GIB:,.2f} GiB"


def _count(value: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:,.2f} {unit}"
    return f"{value:,.0f}"


def _duration(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:,.1f} days ({seconds / 3600:,.0f} h)"
    if seconds >= 3600:
        return f"{seconds / 3600:,.1f} h"
    return f"{seconds / 60:,.1f} min"


def resolve_parallel(parallel: str, processes: int, params: int) -> str:
    """As the Trainer resolves it: one process is never wrapped; `auto` is FSDP2 above 500M parameters."""
    if processes == 1 or parallel == "none":
        return "none"
    if parallel == "auto":
        return "fsdp" if params > 500_000_000 else "ddp"
    return (
        "fsdp" if parallel == "hsdp" else parallel
    )  # memory per GPU: HSDP's within a group is planned as FSDP


def make_plan(
    cfg,
    vocab_size: int | None,
    hardware: Hardware,
    processes: int = 1,
    parallel: str = "auto",
    bf16: bool | None = None,
    mfu: float = 0.4,
    train_tokens: int | None = None,
    sources: list[tuple[str, float, int]] | None = None,
) -> Plan:
    """The arithmetic for `cfg` (a TrainConfig) on `processes` devices like `hardware`."""
    from jalm.model import get_preset
    from jalm.train.config import grad_accum_for

    cfg.validate()
    if processes < 1:
        raise JalmError(f"--gpus must be at least 1, got {processes}")
    if not 0 < mfu <= 1:
        raise JalmError(f"--mfu must be in (0, 1], got {mfu}")
    preset = get_preset(cfg.preset)
    if cfg.seq_len > preset.max_positions:
        raise JalmError(
            f"seq_len {cfg.seq_len} exceeds preset {preset.name!r}'s {preset.max_positions} positions"
        )
    shape = model_shape(cfg.preset, vocab_size)
    if bf16 is None:
        bf16 = cfg.dtype != "float32" if hardware.kind == "cuda" else _cpu_bf16(cfg.dtype)
    plan = Plan(
        shape=shape,
        hardware=hardware,
        processes=processes,
        parallel=resolve_parallel(parallel, processes, shape.params),
        bf16=bf16,
        checkpointing=cfg.activation_checkpointing,
        micro_batch_size=cfg.micro_batch_size,
        seq_len=cfg.seq_len,
        grad_accum=grad_accum_for(cfg, processes),
        steps=None if cfg.time_budget_s is not None else cfg.max_steps,
        mfu=mfu,
        train_tokens=train_tokens,
        sources=sources or [],
        time_budget_s=cfg.time_budget_s,
        preset_label=cfg.preset,
    )
    plan.memory = memory_lines(plan)
    return plan


def _cpu_bf16(dtype: str) -> bool:
    import torch

    from jalm.train.trainer import use_bf16

    return use_bf16(dtype, torch.device("cpu"))


def memory_lines(plan: Plan) -> dict[str, tuple[int, str]]:
    """Each line of the per-device memory, in bytes, with the arithmetic that gives it."""
    s, n = plan.shape, plan.shape.params
    fsdp = plan.parallel == "fsdp"
    shards = plan.processes if fsdp else 1
    per = f" / {shards}" if fsdp else ""
    kept = "sharded" if fsdp else "full replica"
    lines: dict[str, tuple[int, str]] = {
        "weights": (4 * n // shards, f"fp32 master weights, {kept}: 4 B × {n:,}{per}"),
        "gradients": (4 * n // shards, f"fp32, {kept}: 4 B × {n:,}{per}"),
    }
    if plan.parallel == "ddp":
        lines["DDP gradient buckets"] = (4 * n, f"DDP's flat fp32 copy of the gradients: 4 B × {n:,}")
    lines["optimizer"] = (8 * n // shards, f"AdamW exp_avg + exp_avg_sq in fp32: 8 B × {n:,}{per}")
    if fsdp:
        width = 2 if plan.bf16 else 4
        gathered = width * (s.root_params + 2 * s.block_params)
        reducing = (width + 4 if plan.bf16 else 4) * max(s.root_params, s.block_params)
        lines["FSDP2 gathers"] = (
            gathered + reducing,
            f"unsharded {width}-byte parameters of the embeddings + 2 blocks: {width} B × ({s.root_params:,} + "
            f"2 × {s.block_params:,}), + one unsharded gradient being reduced: "
            f"{width + 4 if plan.bf16 else 4} B × {max(s.root_params, s.block_params):,}",
        )
        if plan.grad_accum > 1:
            # Micro-batches before the last neither reshard nor reduce-scatter (distributed.accumulating):
            # the whole parameters and the unsharded fp32 gradients stay until the step's last backward.
            whole = (width + 4) * n
            lines["FSDP2 accumulation"] = (
                max(0, whole - gathered - reducing),
                f"{plan.grad_accum} micro-batches accumulate with whole {width}-byte parameters and unsharded "
                f"fp32 gradients: ({width} + 4) B × {n:,}, less the gathers above",
            )
    elif plan.bf16:
        lines["bf16 weight copies"] = (
            2 * s.matrix_params,
            f"autocast's bf16 casts of the matrices, saved for backward: 2 B × {s.matrix_params:,}",
        )
    tokens = plan.tokens_per_micro
    block = block_bytes_per_token(s, plan.bf16)
    outside = outside_bytes_per_token(s, plan.bf16)
    coef = _block_formula(s.layout, plan.bf16)
    if plan.checkpointing:
        # The loss's backward runs first and frees its 12V before the first block is recomputed, so the
        # recomputed block only adds what exceeds them (nothing, for every preset: V is 51,200 or thousands).
        residual = 2 if (fsdp and plan.bf16) else 4
        recompute = max(0, block - 12 * s.vocab)
        per_token = s.layers * residual * s.hidden + outside + recompute
        how = (
            f"checkpointed: ({s.layers} layers × {residual}h + {outside:,} outside the blocks"
            f"{f' + {recompute:,}' if recompute else ''}) B × {tokens:,} tokens; the block recomputed in "
            f"backward ({coef} = {block:,} B/token) fits in the logits' freed 12V"
        )
    else:
        per_token = s.layers * block + outside
        how = f"({s.layers} layers × ({coef} = {block:,}) + {outside:,} outside) B × {tokens:,} tokens"
    lines["activations"] = (per_token * tokens, how)
    lines["logits"] = (
        12 * s.vocab * tokens,
        f"fp32 log-probs + 2 fp32 gradients in the loss's backward: 12 B × {s.vocab:,} × {tokens:,} tokens",
    )
    if plan.hardware.kind == "cpu":
        names = [name for name in ("activations", "logits") if name in lines]
        lines["allocator slack"] = (
            int(CPU_ALLOCATOR_SLACK * sum(lines[name][0] for name in names)),
            f"freed tensors glibc's malloc keeps in its heap: {CPU_ALLOCATOR_SLACK} × ({' + '.join(names)}) "
            f"(measured on CPU)",
        )
        lines["kernels"] = (CPU_KERNELS_BYTES, "code and kernels the first step touches (measured on CPU)")
    lines["runtime"] = (
        RUNTIME_BYTES[plan.hardware.kind],
        "CUDA context and NCCL buffers (assumed)"
        if plan.hardware.kind == "cuda"
        else "the Python process with torch and transformers loaded (measured)",
    )
    if fsdp:  # the foreach AdamW (DTensor parameters) allocates sqrt(exp_avg_sq) for its step
        lines["optimizer step scratch"] = (4 * n // shards, f"foreach AdamW's sqrt(v): 4 B × {n:,}{per}")
    return lines


def _block_formula(layout: str, bf16: bool) -> str:
    from jalm.model.families import family

    hidden_coef, ffn_coef = family(layout).saved_bytes[bf16]
    return f"{hidden_coef}h + {ffn_coef}f + 4a + 16"


def plan_for_run(
    cfg,
    data_dir,
    device: str = "auto",
    parallel: str = "auto",
    processes: int | None = None,
    gpu_spec: str | None = None,
    mfu: float = 0.4,
) -> Plan:
    """The plan of `jalm train` with these settings: on a named GPU, or on this machine's device.
    `data_dir`: a packed directory or a mixture's sources (see jalm.data.mixture)."""
    from jalm.data import META_FILE, parse_sources, read_meta
    from jalm.data.sampler import block_counts
    from jalm.model import get_preset

    sources = parse_sources(data_dir)
    metas = [read_meta(s.path) if (s.path / META_FILE).exists() else {} for s in sources]
    meta = metas[0]
    known = all("train_tokens" in m for m in metas)
    shares = [
        c / sum(block_counts([s.weight for s in sources])) for c in block_counts([s.weight for s in sources])
    ]
    mixture = (
        [(s.name, share, m["train_tokens"]) for s, share, m in zip(sources, shares, metas)] if known else []
    )
    if not meta and get_preset(cfg.preset).vocab_size is None:
        raise JalmError(
            f"{data_dir}: no {META_FILE}; preset {cfg.preset!r} takes its vocabulary size from the packed data"
        )
    if processes is None:
        processes = int(os.environ.get("WORLD_SIZE", "1"))
    hardware = gpu(gpu_spec) if gpu_spec else local_hardware(device)
    bf16 = None
    if not gpu_spec and hardware.kind == "cuda":
        import torch

        from jalm.train.trainer import use_bf16

        bf16 = use_bf16(cfg.dtype, torch.device("cuda"))
    return make_plan(
        cfg,
        meta.get("vocab_size"),
        hardware,
        processes=processes,
        parallel=parallel,
        bf16=bf16,
        mfu=mfu,
        train_tokens=sum(m["train_tokens"] for m in metas) if known else None,
        sources=mixture,
    )


def check_fits(plan: Plan) -> None:
    """Refuse, in one line, a run whose estimate clearly exceeds the device's memory."""
    if plan.refused:
        raise JalmError(plan.refusal())


def communication(plan: Plan, mode: str, gpus_per_node: int = 8) -> dict:
    """Bytes each GPU sends per optimizer step inside its node and across nodes, for `mode` (ddp, fsdp,
    hsdp), and the link speed that hides them behind the step's compute at the plan's MFU.

    Ring collectives: an all-gather or reduce-scatter over k ranks moves (k-1)/k of the full tensor per
    rank, an all-reduce twice that. FSDP2 (with jalm's accumulation) all-gathers the parameters twice per
    step (forward, backward) and reduce-scatters fp32 gradients once, whatever the micro-batches; on a
    1-D mesh over several nodes every collective spans the nodes (one NIC per GPU assumed). HSDP keeps the
    all-gathers and reduce-scatters inside a node and all-reduces only the 1/g gradient shard across."""
    n, p = plan.shape.params, plan.processes
    width = 2 if plan.bf16 else 4
    g = min(gpus_per_node, p)
    nodes = -(-p // g)
    inside = across = 0.0
    if mode == "ddp":
        volume = 2 * (p - 1) / p * 4 * n
        across, inside = (volume, 0.0) if nodes > 1 else (0.0, volume)
    elif mode == "fsdp":
        volume = (2 * width + 4) * n * (p - 1) / p
        across, inside = (volume, 0.0) if nodes > 1 else (0.0, volume)
    elif mode == "hsdp":
        replicas = p // g
        inside = (2 * width + 4) * n * (g - 1) / g
        across = 2 * (replicas - 1) / replicas * 4 * n / g
    step_s = (
        plan.tokens_per_step * plan.flops_per_token / (p * plan.hardware.peak_flops * plan.mfu)
        if plan.hardware.peak_flops
        else None
    )
    return {"mode": mode, "nodes": nodes, "inside": inside, "across": across, "step_s": step_s}


def describe_communication(plan: Plan, gpus_per_node: int = 8) -> str:
    """The plan's communication lines (the plan's mode, and HSDP beside FSDP2 when nodes are spanned)."""
    if plan.processes == 1:
        return "communication: none (one process)"
    modes = [plan.parallel]
    if plan.parallel == "fsdp" and plan.processes > gpus_per_node:
        modes.append("hsdp")
    lines = [f"communication per GPU per optimizer step ({gpus_per_node} GPUs per node, ring collectives):"]
    for mode in modes:
        c = communication(plan, mode, gpus_per_node)
        text = f"  {mode:<5} over {c['nodes']} node(s): {c['inside'] / 1e9:,.1f} GB inside a node, "
        text += f"{c['across'] / 1e9:,.1f} GB across nodes"
        if c["step_s"]:
            need = [f"{c[k] / c['step_s'] / 1e9:,.1f} GB/s {k}" for k in ("inside", "across") if c[k]]
            text += f"; a {c['step_s']:,.1f} s step hides it at " + (", ".join(need) or "any speed")
        lines.append(text)
    return "\n".join(lines)
