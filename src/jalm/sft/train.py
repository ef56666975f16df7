"""`jalm sft`: instruction tuning of a base model on conversations, full or LoRA, on the shared Trainer.

Reads and checks the data (bad records counted with file:line), removes examples that overlap the
evaluation sets, tokenizes with the chat template and the loss mask, and trains with the pretraining
engine (torchrun, DDP/FSDP2, bf16, compile, sharded checkpoints, exact resume, spike guard). The held-out
masked loss is measured before the first step (the base model's) and after training; everything read,
set aside and learnt is counted in `sft_stats.json`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from jalm.chat_template import load_template
from jalm.errors import JalmError
from jalm.generate import context_length
from jalm.io import write_atomic
from jalm.sft import base as sft_base
from jalm.sft.config import KIND, WARMUP_FRACTION, SftOptions, sft_config
from jalm.sft.dataset import (
    IGNORE,
    EpochStream,
    Example,
    batch_tokens,
    collate,
    collate_padded,
    is_validation,
    load_encoder,
    tokenize,
)
from jalm.train import distributed as distrib
from jalm.train.config import TrainConfig, grad_accum_for
from jalm.train.trainer import RUN_CONFIG, MicroBatch, Task, Trainer

STATS_FILE = "sft_stats.json"
__all__ = ["STATS_FILE", "SftOptions", "sft", "sft_config", "masked_loss", "evaluate_masked_loss"]


def masked_ce_sum(model, input_ids, labels, attention_mask=None, position_ids=None) -> torch.Tensor:
    """Summed cross-entropy over the learnt tokens of a micro-batch (labels IGNORE elsewhere)."""
    logits = model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
    ).logits
    return F.cross_entropy(
        logits.float().view(-1, logits.size(-1)), labels.view(-1), ignore_index=IGNORE, reduction="sum"
    )


def masked_loss(model, input_ids, labels, attention_mask=None, position_ids=None):
    """Mean cross-entropy over the learnt tokens of a micro-batch: (loss to optimise, loss to log)."""
    total = masked_ce_sum(model, input_ids, labels, attention_mask, position_ids)
    mean = total / (labels != IGNORE).sum().clamp(min=1)
    return mean, mean


@torch.no_grad()
def evaluate_masked_loss(model, examples: list[Example], micro: int, pad_id: int, device, autocast) -> float:
    """Held-out masked loss: learnt-token-weighted mean over all validation conversations."""
    if not examples:
        return float("nan")
    model.eval()
    total, count = 0.0, 0
    order = np.argsort([-e.positions for e in examples], kind="stable").tolist()
    for start in range(0, len(order), micro):
        arrays = collate_padded(examples, order[start : start + micro], pad_id)
        batch = {k: torch.from_numpy(v).to(device) for k, v in arrays.items()}
        with autocast():
            total += masked_ce_sum(model, **batch).item()
        count += int((batch["labels"] != IGNORE).sum())
    model.train()
    return total / max(count, 1)


@dataclass
class ConversationSource:
    """Optimizer steps of `grad_accum × processes` micro-batches from the epoch stream; each micro-batch's
    loss is weighted by its share of the step's learnt tokens (all processes), so a step's gradient is
    the mean over every learnt token of the step whatever the lengths."""

    stream: EpochStream
    grad_accum: int
    env: distrib.DistEnv
    pad_id: int
    position: int = 0
    stats: dict = field(default_factory=dict)

    def next_step(self) -> tuple[list[MicroBatch], int]:
        per_step = self.grad_accum * self.env.world_size
        batches = [self.stream.batch(self.position + i) for i in range(per_step)]
        self.position += per_step
        counts = [batch_tokens(self.stream.examples, b, self.stream.batching) for b in batches]
        step_learnt = sum(learnt for _, learnt in counts)
        micros = []
        for batch, (tokens, learnt) in list(zip(batches, counts))[self.env.rank :: self.env.world_size]:
            arrays = collate(self.stream.examples, batch, self.stream.batching, self.pad_id)
            inputs = {
                k: torch.from_numpy(v).to(self.env.device, non_blocking=True) for k, v in arrays.items()
            }
            divisor = step_learnt / (max(learnt, 1) * self.env.world_size)
            micros.append(MicroBatch(inputs, divisor, tokens))
        return micros, sum(tokens for tokens, _ in counts)


def _read_data(options: SftOptions) -> tuple[list, list, dict]:
    """Training and held-out conversations, decontaminated, with every count."""
    from jalm.sft.records import read_conversations

    return read_split(read_conversations, options, "conversations")


def read_split(read: Callable, options, what: str) -> tuple[list, list, dict]:
    """Training and held-out records (`read(paths)` → (records, report)), split by record unless
    `options.val_data` names the held-out files, decontaminated against the evaluation sets, with every
    count; shared by sft (conversations) and dpo (pairs)."""
    records, report = read(options.data)
    stats: dict = {"read": report.to_dict()}
    if options.val_data:
        val, val_report = read(options.val_data)
        stats["read_val"] = val_report.to_dict()
        train = records
    else:
        val = [r for r in records if is_validation(r, options.val_fraction)]
        train = [r for r in records if not is_validation(r, options.val_fraction)]
    if options.decontaminate:
        from jalm.sft.decontaminate import build_index, decontaminate, eval_texts

        texts = eval_texts(Path(options.eval_dir) if options.eval_dir else None)
        n = {"n": options.decontamination_n} if options.decontamination_n else {}
        index = build_index(texts, **n)
        train, stats["decontamination"] = decontaminate(train, index)
        val, stats["decontamination_val"] = decontaminate(val, index)
    if not train:
        raise JalmError(f"{', '.join(map(str, options.data))}: no valid training {what}")
    return train, val, stats


def _check_run_dir(run_dir: Path, base: dict) -> None:
    path = run_dir / RUN_CONFIG
    if not path.exists():
        return
    previous = json.loads(path.read_text(encoding="utf-8"))
    if previous.get("kind") != KIND or previous.get("base", {}).get("path") != base["path"]:
        raise JalmError(
            f"{run_dir}: holds another run (not instruction tuning of {base['path']}); use another --out"
        )


def sft(
    options: SftOptions,
    cfg: TrainConfig,
    run_dir: str | Path,
    device: str = "auto",
    parallel: str = "auto",
    progress: bool = True,
) -> dict:
    """Instruction-tune (or resume) a run; returns a summary. Rerunning with the same run_dir resumes."""
    run_dir = Path(run_dir)
    env = distrib.setup(device, cfg.dist_timeout_minutes or None)
    base = sft_base.describe_base(options.model)
    template = load_template(options.chat_template)
    train_conv, val_conv, stats = _read_data(options)
    encoder = load_encoder(base["tokenizer"])
    lora = sft_base.lora_settings(options)
    model = sft_base.build_model(base, lora, env.device, cfg.seed)
    context = context_length(model)
    if cfg.seq_len > context:
        cfg.seq_len = context
    shown = progress and env.is_main
    train_examples, stats["tokenize"] = _tokenize(train_conv, encoder, cfg, template, options, shown)
    val_examples, stats["tokenize_val"] = _tokenize(val_conv, encoder, cfg, template, options, False)
    grad_accum = grad_accum_for(cfg, env.world_size)
    stream = EpochStream(train_examples, cfg.seq_len, cfg.micro_batch_size, options.batching, cfg.seed)
    per_step = grad_accum * env.world_size
    _settle_steps(cfg, stream, options.epochs, per_step)
    stats["batching"] = _batching_stats(stream, cfg, per_step)
    if env.is_main:
        _check_run_dir(run_dir, base)
        run_dir.mkdir(parents=True, exist_ok=True)
    distrib.barrier()

    source = ConversationSource(stream, grad_accum, env, encoder.eos_id)
    n_params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def check_resume(state: dict, path: Path) -> None:
        if state.get("kind") != KIND or state.get("base") != base["path"]:
            raise JalmError(f"{path}: checkpoint of another run, not instruction tuning of {base['path']}")

    def evaluate(model, autocast) -> dict[str, float]:
        loss = evaluate_masked_loss(
            model, val_examples, cfg.micro_batch_size, encoder.eos_id, env.device, autocast
        )
        return {"val_loss": loss}

    task = Task(
        model=model,
        data=source,
        loss=masked_loss,
        evaluate=evaluate,
        identity={"kind": KIND, "base": base["path"]},
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
            "model_config": _model_config(model),
        },
        check_resume=check_resume,
        n_params=n_params,
        frozen_base=lora is not None,
        extra_metrics=lambda: {"epoch": round(stream.epoch_at(source.position), 4)},
    )
    trainer = Trainer(cfg, run_dir, env, task, grad_accum, parallel, progress)
    _record_base_val_loss(trainer, run_dir, stats)
    if env.is_main:
        write_atomic(run_dir / STATS_FILE, json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
    summary = trainer.fit()
    if summary:
        summary["trainable_params"] = trainable
    return summary


def _settle_steps(cfg: TrainConfig, stream: EpochStream, epochs: int, per_step: int) -> None:
    """Fill in what was not given, then validate: max_steps from `epochs` passes over the data, the
    warmup as WARMUP_FRACTION of the steps."""
    if cfg.max_steps < 1:
        cfg.max_steps = max(1, stream.micro_batches_in(epochs) // per_step)
    if cfg.warmup_steps < 0:
        cfg.warmup_steps = max(1, round(WARMUP_FRACTION * cfg.max_steps))
    cfg.validate()


def _record_base_val_loss(trainer: Trainer, run_dir: Path, stats: dict) -> None:
    """stats["base_val_loss"]: the base model's held-out loss, the figure to beat. Measured and logged on
    a fresh run; read back from the stats file on a resume."""
    if trainer.start_step == 0:
        base_val = trainer.evaluate()
        trainer.log_validation(base_val)
        value = base_val["val_loss"]
        stats["base_val_loss"] = value if math.isfinite(value) else None  # None: no held-out data
    elif (run_dir / STATS_FILE).exists():
        previous = json.loads((run_dir / STATS_FILE).read_text(encoding="utf-8"))
        stats["base_val_loss"] = previous.get("base_val_loss")


def _tokenize(conversations, encoder, cfg: TrainConfig, template: str, options: SftOptions, progress: bool):
    from jalm.progress import progress_bar

    shown = progress_bar(conversations, desc="tokenize", unit=" conv", disable=not progress)
    examples, stats = tokenize(shown, encoder, cfg.seq_len, template, options.train_on_everything)
    return examples, stats.to_dict()


def _batching_stats(stream: EpochStream, cfg: TrainConfig, per_step: int) -> dict:
    plan = stream.plan(0)
    slots = 0
    for batch in plan:
        if stream.batching == "packed":
            slots += len(batch) * max(sum(stream.examples[i].positions for i in row) for row in batch)
        else:
            slots += len(batch) * max(stream.examples[i].positions for i in batch)
    used = int(stream.lengths.sum())
    return {
        "mode": stream.batching,
        "micro_batches_per_epoch": len(plan),
        "steps_per_epoch": len(plan) / per_step,
        "steps": cfg.max_steps,
        "warmup_steps": cfg.warmup_steps,
        "seq_len": cfg.seq_len,
        "padding_fraction": round(1 - used / max(slots, 1), 4) if slots else math.nan,
    }


def _model_config(model) -> dict:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.config.to_dict()
