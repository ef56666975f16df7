"""Pretraining: packed token windows → a model built from a preset, trained by the shared Trainer.

Builds the model and initialises it (seeded, identical on every rank, optionally from a Hugging Face
directory), then hands the Trainer (`train/trainer.py`) a task: windows of `seq_len + 1` tokens, the
next-token loss and the validation loss. Each optimizer step consumes `micro_batch_size × grad_accum ×
world_size` windows (grad_accum may follow from `global_batch_tokens`, so one command keeps its global
batch at any world size) from a deterministic sampler whose position is saved with the checkpoint.

The data is one packed directory or a weighted mixture of several (`jalm.data.mixture`): windows are
drawn from the sources in proportion to their weights (`jalm.data.sampler.MixtureSampler`); the log
records tokens and epochs per source, and each evaluation the validation loss per source.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from jalm.data import get_windows, num_windows
from jalm.data.mixture import Dataset, Source, open_datasets, parse_sources
from jalm.data.sampler import MixtureSampler
from jalm.errors import JalmError
from jalm.model import build_model, count_parameters, get_preset, hf_config, init_weights
from jalm.train import distributed as distrib
from jalm.train.config import TrainConfig, grad_accum_for
from jalm.train.trainer import RUN_CONFIG, MicroBatch, Task, Trainer, use_bf16

__all__ = ["RUN_CONFIG", "train", "use_bf16", "load_hf_weights", "mfu"]


def _check_run_dir(run_dir: Path, cfg: TrainConfig) -> None:
    """A run directory belongs to one preset; refuse to resume a run of another one in it."""
    path = run_dir / RUN_CONFIG
    if not path.exists():
        return
    previous = json.loads(path.read_text(encoding="utf-8"))
    if previous.get("preset") != cfg.preset:
        raise JalmError(
            f"{run_dir}: holds a run of preset {previous.get('preset')!r}, not {cfg.preset!r}; use another --out"
        )


def cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, z_loss: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean token loss (for the optimizer, incl. optional z-loss) and the plain CE (for logging)."""
    logits = logits.float().view(-1, logits.size(-1))
    ce = F.cross_entropy(logits, targets.reshape(-1))
    if z_loss > 0:
        return ce + z_loss * torch.logsumexp(logits, dim=-1).pow(2).mean(), ce
    return ce, ce


def forward_loss(model, batch: torch.Tensor, z_loss: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token loss over packed windows (each row is seq_len + 1 tokens; no padding, no masks)."""
    logits = model(input_ids=batch[:, :-1]).logits
    return cross_entropy(logits, batch[:, 1:], z_loss)


def eval_windows(windows: int, count: int) -> np.ndarray:
    """`count` validation windows spread evenly over all `windows` (all of them if there are fewer), so a
    sharded validation set is sampled across its shards, not only from the first one."""
    if windows <= count:
        return np.arange(windows)
    return np.linspace(0, windows - 1, count).round().astype(np.int64)


@torch.no_grad()
def evaluate_loss(model, tokens, seq_len: int, batches: int, micro: int, device, autocast) -> float:
    """Mean next-token loss over `batches` × `micro` validation windows spread over the split."""
    total, count = 0.0, 0
    chosen = eval_windows(num_windows(tokens, seq_len), batches * micro)
    if len(chosen) == 0:
        return float("nan")
    model.eval()
    for b in range(0, len(chosen), micro):
        idx = chosen[b : b + micro]
        batch = torch.from_numpy(get_windows(tokens, idx, seq_len)).to(device)
        with autocast():
            logits = model(input_ids=batch[:, :-1]).logits
        total += F.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1), reduction="sum"
        ).item()
        count += batch[:, 1:].numel()
    model.train()
    return total / max(count, 1)


@dataclass
class WindowSource:
    """Optimizer steps of `micro × grad_accum × processes` windows from the seeded, resumable sampler."""

    datasets: list[Dataset]
    sampler: MixtureSampler
    seq_len: int
    micro_batch_size: int
    grad_accum: int
    env: distrib.DistEnv

    @property
    def position(self) -> int:
        return self.sampler.position

    @position.setter
    def position(self, value: int) -> None:
        self.sampler.position = value

    def next_step(self) -> tuple[list[MicroBatch], int]:
        per_step = self.micro_batch_size * self.grad_accum * self.env.world_size
        sources, windows = self.sampler.take(per_step)
        sources = sources[self.env.rank :: self.env.world_size]
        windows = windows[self.env.rank :: self.env.world_size]
        micros = []
        for micro in range(self.grad_accum):
            rows = slice(micro * self.micro_batch_size, (micro + 1) * self.micro_batch_size)
            idx = windows[rows]
            batch = torch.from_numpy(self.windows_of(sources[rows], idx))
            batch = batch.to(self.env.device, non_blocking=True)
            micros.append(MicroBatch({"batch": batch}, self.grad_accum, len(idx) * self.seq_len))
        return micros, per_step * self.seq_len

    def windows_of(self, sources: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """The rows of a micro-batch, each from its own source, in draw order."""
        if len(self.datasets) == 1:
            return get_windows(self.datasets[0].train, windows, self.seq_len)
        return np.concatenate(
            [get_windows(self.datasets[s].train, [w], self.seq_len) for s, w in zip(sources, windows)]
        )

    def per_source(self) -> dict[str, float]:
        """Tokens drawn and epochs (passes over its windows) per source so far, for metrics.jsonl."""
        drawn, epochs = self.sampler.drawn(), self.sampler.epochs()
        record: dict[str, float] = {}
        for d, n, e in zip(self.datasets, drawn, epochs):
            record[f"tokens/{d.source.name}"] = int(n) * self.seq_len
            record[f"epochs/{d.source.name}"] = round(e, 6)
        return record


def describe_sources(datasets: list[Dataset], sampler: MixtureSampler, draws: int | None) -> list[dict]:
    """What run.json records per source: where, the weight and share, the tokens, and the epochs that
    `draws` windows (the planned run; None when a time budget will decide) make of it."""
    total_tokens = sum(len(d.train) for d in datasets)
    return [
        {
            "name": d.source.name,
            "path": str(d.source.path),
            "weight": d.source.weight,
            "share_of_draws": share,
            "share_of_tokens": round(len(d.train) / max(total_tokens, 1), 6),
            "train_tokens": len(d.train),
            "windows": n,
            "planned_epochs": None if draws is None else round(draws * share / n, 4),
        }
        for d, share, n in zip(datasets, sampler.shares, sampler.windows)
    ]


def _sampler(cfg: TrainConfig, datasets: list) -> tuple[MixtureSampler, list]:
    """The windows sampler over all sources, and what fixes its sequence (a resume must match it)."""
    windows = [num_windows(d.train, cfg.seq_len) for d in datasets]
    for d, n in zip(datasets, windows):
        if n < 1:
            raise JalmError(f"{d.source.path}: too few training tokens for one sequence of {cfg.seq_len + 1}")
    sampler = MixtureSampler(windows, [d.source.weight for d in datasets], seed=cfg.seed)
    return sampler, [[d.source.name, c, n] for d, c, n in zip(datasets, sampler.counts, windows)]


def _initial_model(
    cfg: TrainConfig, preset, config, device: torch.device, splits: dict | None = None
) -> torch.nn.Module:
    """The preset's model on `device`, seeded initialisation, or the weights of `--init-from`."""
    torch.manual_seed(cfg.seed)
    model = build_model(config, device)
    generator = torch.Generator(device).manual_seed(cfg.seed)
    init_weights(model, preset.hidden, preset.layers, cfg.init, generator=generator)
    if cfg.init_from:
        load_hf_weights(model, cfg.init_from, splits)
    return model


def _resume_check(cfg: TrainConfig, vocab_size: int, data_identity: list, block: int):
    """Refuse a checkpoint of another preset, tokenizer or data."""

    def check_resume(state: dict, path: Path) -> None:
        if state.get("preset") != cfg.preset or state.get("vocab_size") != vocab_size:
            raise JalmError(
                f"{path}: checkpoint of preset {state.get('preset')!r} (vocab {state.get('vocab_size')}), "
                f"but this run is {cfg.preset!r} with a {vocab_size}-piece tokenizer"
            )
        if "data" in state and state["data"] != data_identity:
            raise JalmError(
                f"{path}: checkpoint of a run on other data (sources, draws per {block}, windows "
                f"{state['data']}; now {data_identity}); resume with the same --data, or use another --out"
            )

    return check_resume


def _evaluator(cfg: TrainConfig, datasets: list, shares: list[float], device: torch.device):
    """Validation loss, per source too for a mixture (the overall one weighs sources as training draws them)."""

    def evaluate(model, autocast) -> dict[str, float]:
        micro = cfg.micro_batch_size
        losses = [
            evaluate_loss(model, d.val, cfg.seq_len, cfg.eval_batches, micro, device, autocast)
            for d in datasets
        ]
        if len(datasets) == 1:
            return {"val_loss": losses[0]}
        # Sources without validation text aside.
        known = [(loss, share) for loss, share in zip(losses, shares) if math.isfinite(loss)]
        overall = sum(loss * share for loss, share in known) / sum(s for _, s in known) if known else math.nan
        return {"val_loss": overall, **{f"val_loss/{d.source.name}": v for d, v in zip(datasets, losses)}}

    return evaluate


def train(
    cfg: TrainConfig,
    data: str | Path | Source | list,
    run_dir: str | Path,
    device: str = "auto",
    parallel: str = "auto",
    progress: bool = True,
) -> dict:
    """Train (or resume) a run; returns a summary dict. Rerunning with the same run_dir resumes.

    `data`: a packed directory, or several sources (`NAME=DIR:WEIGHT` strings or `Source`s) to mix."""
    cfg.validate()
    run_dir = Path(run_dir)
    datasets = open_datasets(parse_sources(data))
    env = distrib.setup(device, cfg.dist_timeout_minutes or None)
    grad_accum = grad_accum_for(cfg, env.world_size)
    meta = datasets[0].meta
    preset = get_preset(cfg.preset)
    if cfg.seq_len > preset.max_positions:
        raise JalmError(
            f"seq_len {cfg.seq_len} exceeds preset {preset.name!r}'s {preset.max_positions} positions"
        )
    sampler, data_identity = _sampler(cfg, datasets)
    if cfg.init_from and preset.source is not None:  # continued pretraining of a model directory
        check_base_tokenizer(preset.source, datasets[0].source.path / "tokenizer")
    if env.is_main:
        _check_run_dir(run_dir, cfg)
        run_dir.mkdir(parents=True, exist_ok=True)
    distrib.barrier()

    config = hf_config(preset, meta["vocab_size"])
    splits = extension_splits(datasets[0].source.path / "tokenizer") if cfg.init_from else None
    if splits is not None and cfg.new_rows_init == "random":
        splits = {}  # new rows keep the seeded random init (the ablation in benchmarks/vocab_extend.py)
    model = _initial_model(cfg, preset, config, env.device, splits)
    n_params = count_parameters(model)
    source = WindowSource(datasets, sampler, cfg.seq_len, cfg.micro_batch_size, grad_accum, env)
    per_step = cfg.micro_batch_size * grad_accum * env.world_size
    task = Task(
        model=model,
        data=source,
        loss=functools.partial(forward_loss, z_loss=cfg.z_loss),
        evaluate=_evaluator(cfg, datasets, sampler.shares, env.device),
        identity={"preset": cfg.preset, "vocab_size": meta["vocab_size"], "data": data_identity},
        run_info={
            "preset": cfg.preset,
            "params": n_params,
            # The first source's directory: export and sft take the tokenizer from it (all sources share it).
            "data": str(datasets[0].source.path),
            "sources": describe_sources(
                datasets, sampler, None if cfg.time_budget_s else per_step * cfg.max_steps
            ),
            "model_config": config.to_dict(),
        },
        check_resume=_resume_check(cfg, meta["vocab_size"], data_identity, sampler.block),
        n_params=n_params,
        mfu=lambda tps: mfu(n_params, preset, cfg.seq_len, tps),
        extra_metrics=source.per_source,
    )
    return Trainer(cfg, run_dir, env, task, grad_accum, parallel, progress).fit()


def load_hf_weights(
    model: torch.nn.Module, hf_dir: str | Path, splits: dict[int, list[int]] | None = None
) -> None:
    """Copy the weights of a Hugging Face directory into `model`, demanding the same architecture and shapes.

    safetensors or `pytorch_model.bin` (read with weights_only=True: no pickled code runs), see
    jalm.model.weights."""
    from jalm.hf import check_model_dir
    from jalm.model.weights import load_weights

    path = check_model_dir(hf_dir, need_tokenizer=False)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    architecture = (config.get("architectures") or [None])[0]
    if architecture != type(model).__name__:
        raise JalmError(f"{path}: a {architecture}, but the preset builds a {type(model).__name__}")
    load_weights(
        model,
        path,
        hint="pick the matching --preset, or leave --preset out to keep the base's",
        splits=splits,
    )


def extension_splits(data_tokenizer: Path) -> dict[int, list[int]] | None:
    """New id → base ids, when the data was packed with `jalm tokenizer extend`'s tokenizer."""
    from jalm.tokenizer.extend import EXTEND_FILE

    path = data_tokenizer / EXTEND_FILE
    if not path.is_file():
        return None
    return {int(k): v for k, v in json.loads(path.read_text(encoding="utf-8"))["splits"].items()}


def check_base_tokenizer(base_dir: str | Path, data_tokenizer: Path) -> None:
    """Continued pretraining needs data packed with the base's own tokenizer (or `jalm tokenizer extend`'s)."""
    from jalm.tokenizer import tokenizer_model_file

    base = Path(base_dir)
    try:
        base_file = tokenizer_model_file(base)
    except JalmError:
        return  # a base without a SentencePiece model: the vocabulary-size check is all we can do
    data_file = tokenizer_model_file(data_tokenizer)
    if base_file.read_bytes() == data_file.read_bytes():
        return
    extended = data_tokenizer / "jalm_extend.json"
    if extended.is_file():
        record = json.loads(extended.read_text(encoding="utf-8"))
        if record.get("base_sha256") == hashlib.sha256(base_file.read_bytes()).hexdigest():
            return
    raise JalmError(
        f"{data_tokenizer}: the data was packed with another tokenizer than {base_file}; "
        f"pack it with `jalm pack --tokenizer {base}` (or a `jalm tokenizer extend` of it)"
    )


def mfu(
    n_params: int, preset, seq_len: int, tokens_per_s_per_device: float, peak_flops: float | None = None
) -> float:
    """Model FLOPs utilisation (PaLM's formula: 6N + 12·L·H·T per token) against the device's bf16 peak."""
    if peak_flops is None:
        peak_flops = _device_peak_flops()
    flops_per_token = 6 * n_params + 12 * preset.layers * preset.hidden * seq_len
    return flops_per_token * tokens_per_s_per_device / peak_flops if peak_flops else math.nan


def _device_peak_flops() -> float:
    from jalm.train.plan import peak_flops  # the table `jalm train --plan` also uses

    return peak_flops(torch.cuda.get_device_name() if torch.cuda.is_available() else "")
