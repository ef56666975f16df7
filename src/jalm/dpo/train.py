"""`jalm dpo`: preference tuning (DPO, IPO, SimPO, ORPO) of an instruction-tuned model, full or LoRA, on
the shared Trainer.

Reads and checks the pairs (bad records counted with path:line), removes pairs that overlap the
evaluation sets (sft's check), tokenizes with the model's chat template, computes the reference
log-probabilities once (jalm.dpo.reference) and trains with the pretraining engine (torchrun,
DDP/FSDP2, bf16, sharded checkpoints, exact resume, spike guard). Held-out preference accuracy and
margin are measured before the first step and after training; per step, metrics.jsonl gets the loss,
the chosen and rejected rewards, the reward accuracy, the margin and the log-probabilities.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from jalm.chat_template import load_template
from jalm.dpo.config import KIND, REFERENCE_FREE, WARMUP_FRACTION, DpoOptions
from jalm.dpo.dataset import collate_pairs, tokenize_pairs
from jalm.dpo.losses import pair_losses, pair_metrics, sequence_logps
from jalm.dpo.reference import reference_key, reference_logps
from jalm.errors import JalmError
from jalm.generate import context_length
from jalm.io import write_atomic
from jalm.sft import base as sft_base
from jalm.sft.dataset import EpochStream, load_encoder
from jalm.train import distributed as distrib
from jalm.train.config import TrainConfig, grad_accum_for
from jalm.train.trainer import RUN_CONFIG, MicroBatch, Task, Trainer, use_bf16

STATS_FILE = "dpo_stats.json"
METRICS = ("reward_chosen", "reward_rejected", "reward_accuracy", "margin", "logp_chosen", "logp_rejected")


@dataclass
class PairSource:
    """Optimizer steps of `grad_accum × processes` micro-batches of pairs; each micro-batch's mean loss
    is weighted by its share of the step's pairs, so a step's gradient is the mean over all its pairs."""

    stream: EpochStream
    grad_accum: int
    env: distrib.DistEnv
    pad_id: int
    reference: np.ndarray | None  # (N, 2) or None for reference-free losses
    position: int = 0

    def next_step(self) -> tuple[list[MicroBatch], int]:
        per_step = self.grad_accum * self.env.world_size
        batches = [self.stream.batch(self.position + i) for i in range(per_step)]
        self.position += per_step
        step_pairs = sum(len(b) for b in batches)
        examples = self.stream.examples
        micros = []
        for batch in batches[self.env.rank :: self.env.world_size]:
            arrays = collate_pairs(examples, batch, self.pad_id)
            inputs = {k: torch.from_numpy(v).to(self.env.device) for k, v in arrays.items()}
            if self.reference is not None:
                inputs["ref"] = torch.from_numpy(self.reference[batch]).float().to(self.env.device)
            tokens = sum(examples[i].positions for i in batch)
            micros.append(MicroBatch(inputs, step_pairs / (len(batch) * self.env.world_size), tokens))
        return micros, sum(examples[i].positions for b in batches for i in b)


@dataclass
class StepMetrics:
    """Sums of the per-pair figures since the last log, across this process's micro-batches."""

    sums: dict = field(default_factory=dict)
    pairs: int = 0

    def add(self, values: dict[str, torch.Tensor], pairs: int) -> None:
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + value.detach().double()
        self.pairs += pairs

    def take(self, device) -> dict[str, float]:
        """Means over every pair since the last call, summed across processes (every rank calls this)."""
        names = METRICS
        values = torch.tensor(
            [float(self.sums.get(n, 0.0)) for n in names] + [float(self.pairs)],
            dtype=torch.float64,
            device=device,
        )
        if torch.distributed.is_initialized():
            torch.distributed.all_reduce(values)
        self.sums, self.pairs = {}, 0
        count = max(values[-1].item(), 1.0)
        return {name: round(values[i].item() / count, 5) for i, name in enumerate(names)}


def preference_loss(
    model, *, kind, beta, gamma, metrics: StepMetrics, input_ids, labels, position_ids, segments, ref=None
):
    """The Task's loss: mean over the micro-batch's pairs (loss to optimise, loss to log)."""
    logps, lengths = sequence_logps(model, input_ids, labels, position_ids, segments)
    losses, rewards = pair_losses(kind, beta, logps, lengths, ref, gamma)
    metrics.add(pair_metrics(losses, rewards, logps), len(losses))
    loss = losses.mean()
    return loss, loss.detach()


@torch.no_grad()
def evaluate_pairs(
    model, examples, reference, options: DpoOptions, micro, pad_id, device, autocast
) -> dict[str, float]:
    """Held-out preference loss, reward accuracy and margin, means over all held-out pairs."""
    if not examples:
        names = ("loss", "reward_accuracy", "margin", "logp_accuracy")
        return {f"val_{name}": math.nan for name in names}
    model.eval()
    # logp_accuracy: the chosen reply has the higher mean token log-probability (no reference involved),
    # informative before the first step, when every DPO reward is 0.
    totals = {"loss": 0.0, "reward_accuracy": 0.0, "margin": 0.0, "logp_accuracy": 0.0}
    order = sorted(range(len(examples)), key=lambda i: -examples[i].positions)
    for start in range(0, len(order), micro):
        indices = order[start : start + micro]
        batch = {
            k: torch.from_numpy(v).to(device) for k, v in collate_pairs(examples, indices, pad_id).items()
        }
        with autocast():
            logps, lengths = sequence_logps(model, **batch)
        ref = torch.from_numpy(reference[indices]).float().to(device) if reference is not None else None
        losses, rewards = pair_losses(
            options.loss, options.strength, logps, lengths, ref, options.simpo_gamma
        )
        sums = pair_metrics(losses, rewards, logps)
        for name in ("loss", "reward_accuracy", "margin"):
            totals[name] += sums[name].item()
        mean = logps / lengths
        totals["logp_accuracy"] += (mean[:, 0] > mean[:, 1]).sum().item()
    model.train()
    return {f"val_{name}": value / len(examples) for name, value in totals.items()}


def _read_data(options: DpoOptions) -> tuple[list, list, dict]:
    from jalm.dpo.records import read_pairs
    from jalm.sft.train import read_split

    return read_split(read_pairs, options, "pairs")


def model_template(options: DpoOptions, tokenizer_dir: str) -> str:
    """--chat-template, else the template the model was exported with, else LINE's."""
    if options.chat_template:
        return load_template(options.chat_template)
    config = Path(tokenizer_dir) / "tokenizer_config.json"
    if config.exists():
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        if isinstance(template, str):
            return template
    return load_template(None)


def describe_base(path: str | Path) -> dict:
    run_file = Path(path) / RUN_CONFIG
    if run_file.exists() and json.loads(run_file.read_text(encoding="utf-8")).get("kind") in ("sft", KIND):
        raise JalmError(f"{path}: a tuning run; export it first (jalm export) and start from the export")
    return sft_base.describe_base(path)


def dpo(
    options: DpoOptions,
    cfg: TrainConfig,
    run_dir: str | Path,
    device: str = "auto",
    parallel: str = "auto",
    progress: bool = True,
) -> dict:
    """Preference-tune (or resume) a run; returns a summary. Rerunning with the same run_dir resumes."""
    from jalm.dpo.config import LOSSES

    if options.loss not in LOSSES:
        raise JalmError(f"unknown loss {options.loss!r}; choose one of {', '.join(LOSSES)}")
    run_dir = Path(run_dir)
    env = distrib.setup(device, cfg.dist_timeout_minutes or None)
    base = describe_base(options.model)
    template = model_template(options, base["tokenizer"])
    train_pairs, val_pairs, stats = _read_data(options)
    encoder = load_encoder(base["tokenizer"])
    lora = sft_base.lora_settings(options)
    model = sft_base.build_model(base, lora, env.device, cfg.seed)
    cfg.seq_len = min(cfg.seq_len, context_length(model))
    train_examples, tok = tokenize_pairs(train_pairs, encoder, cfg.seq_len, template)
    val_examples, tok_val = tokenize_pairs(val_pairs, encoder, cfg.seq_len, template)
    stats["tokenize"], stats["tokenize_val"] = tok.to_dict(), tok_val.to_dict()
    if not train_examples:
        raise JalmError(
            f"{', '.join(map(str, options.data))}: every training pair is too long for the context"
        )
    grad_accum = grad_accum_for(cfg, env.world_size)
    stream = EpochStream(train_examples, cfg.seq_len, cfg.micro_batch_size, "padded", cfg.seed)
    per_step = grad_accum * env.world_size
    if cfg.max_steps < 1:
        cfg.max_steps = max(1, stream.micro_batches_in(options.epochs) // per_step)
    if cfg.warmup_steps < 0:
        cfg.warmup_steps = max(1, round(WARMUP_FRACTION * cfg.max_steps))
    cfg.validate()
    if env.is_main:
        _check_run_dir(run_dir, base, options.loss)
        run_dir.mkdir(parents=True, exist_ok=True)
    distrib.barrier()

    reference = {"train": None, "val": None}
    if options.loss not in REFERENCE_FREE:
        bf16 = use_bf16(cfg.dtype, env.device)
        autocast = (lambda: torch.autocast(env.device.type, dtype=torch.bfloat16)) if bf16 else _no_autocast
        key = reference_key(base, train_examples + val_examples, bf16)
        sets = {"train": train_examples, "val": val_examples}
        reference, reused = reference_logps(
            run_dir, model, key, sets, cfg.micro_batch_size, encoder.eos_id, env, autocast
        )
        stats["reference"] = {"pairs": len(train_examples) + len(val_examples), "reused": reused}

    source = PairSource(stream, grad_accum, env, encoder.eos_id, reference["train"])
    metrics = StepMetrics()
    loss = functools.partial(
        preference_loss, kind=options.loss, beta=options.strength, gamma=options.simpo_gamma, metrics=metrics
    )
    n_params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def check_resume(state: dict, path: Path) -> None:
        if (
            state.get("kind") != KIND
            or state.get("base") != base["path"]
            or state.get("loss") != options.loss
        ):
            raise JalmError(f"{path}: checkpoint of another run, not {options.loss} tuning of {base['path']}")

    def evaluate(model, autocast) -> dict[str, float]:
        return evaluate_pairs(
            model,
            val_examples,
            reference["val"],
            options,
            cfg.micro_batch_size,
            encoder.eos_id,
            env.device,
            autocast,
        )

    task = Task(
        model=model,
        data=source,
        loss=loss,
        evaluate=evaluate,
        identity={"kind": KIND, "base": base["path"], "loss": options.loss},
        run_info={
            "kind": KIND,
            "preset": KIND,
            "params": n_params,
            "trainable_params": trainable,
            "base": base,
            "lora": lora,
            "chat_template": template,
            "eos_token": encoder.eos_token,
            "options": asdict(options),
            "beta": options.strength,
            "model_config": sft_base_config(model),
        },
        check_resume=check_resume,
        n_params=n_params,
        frozen_base=lora is not None,
        extra_metrics=lambda: {
            **metrics.take(env.device),
            "epoch": round(stream.epoch_at(source.position), 4),
        },
    )
    trainer = Trainer(cfg, run_dir, env, task, grad_accum, parallel, progress)
    _record_base_validation(trainer, run_dir, stats)
    if env.is_main:
        write_atomic(run_dir / STATS_FILE, json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
    summary = trainer.fit()
    if summary:
        summary["trainable_params"] = trainable
    return summary


def _no_autocast():
    from contextlib import nullcontext

    return nullcontext()


def sft_base_config(model) -> dict:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.config.to_dict()


def _check_run_dir(run_dir: Path, base: dict, loss: str) -> None:
    path = run_dir / RUN_CONFIG
    if not path.exists():
        return
    previous = json.loads(path.read_text(encoding="utf-8"))
    same = previous.get("kind") == KIND and previous.get("base", {}).get("path") == base["path"]
    if not same or previous.get("options", {}).get("loss") != loss:
        raise JalmError(
            f"{run_dir}: holds another run (not {loss} tuning of {base['path']}); use another --out"
        )


def _record_base_validation(trainer: Trainer, run_dir: Path, stats: dict) -> None:
    """stats["base_val"]: held-out accuracy and margin before the first step; read back on a resume."""
    if trainer.start_step == 0:
        values = trainer.evaluate()
        trainer.log_validation(values)
        stats["base_val"] = {k: (v if math.isfinite(v) else None) for k, v in values.items()}
    elif (run_dir / STATS_FILE).exists():
        stats["base_val"] = json.loads((run_dir / STATS_FILE).read_text(encoding="utf-8")).get("base_val")
