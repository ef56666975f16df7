"""The Trainer: what every kind of training shares (pretraining, instruction tuning), in torchtitan's spirit.

A `Task` brings what differs: the model (built and initialised, or loaded), the data as a source of
optimizer steps, the loss, the validation, and what identifies a run. The Trainer does the rest, in
torchtitan's order: activation checkpointing → shard/replicate → compile → optimizer → resume; then
`fit` runs `train_step` after `train_step` and logs, evaluates and saves between them.

Each optimizer step takes its micro-batches from a deterministic source whose position is saved with the
checkpoint, so a resumed run (even after `kill -9`) continues on exactly the data it would have seen.
A micro-batch's mean loss is divided by its `divisor` before backward: `grad_accum` for equal-sized
windows, or the micro-batch's share of the step's tokens when micro-batches differ in size (instruction
tuning), so every step's gradient is the mean over all the step's tokens on all processes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from jalm.io import write_atomic
from jalm.train import checkpoint as ckpt
from jalm.train import distributed as distrib
from jalm.train.budget import TimeBudget
from jalm.train.config import TrainConfig
from jalm.train.guard import SpikeGuard
from jalm.train.metrics import MetricsLog, plot_loss
from jalm.train.optim import build_optimizer
from jalm.train.schedule import lr_at
from jalm.train.trackers import open_trackers

RUN_CONFIG = "run.json"


@dataclass
class MicroBatch:
    inputs: dict[str, torch.Tensor]  # keyword arguments of the task's loss, already on the device
    divisor: float  # the micro-batch's mean loss is divided by this before backward
    tokens: int  # input tokens processed, for throughput


class StepSource(Protocol):
    """A deterministic stream of optimizer steps; `position` is saved with every checkpoint."""

    position: int

    def next_step(self) -> tuple[list[MicroBatch], int]:
        """This process's micro-batches for the next step, and the tokens of the whole step (all processes)."""


@dataclass
class Task:
    """What a kind of training brings to the Trainer."""

    model: torch.nn.Module  # built and initialised on the device, not yet wrapped
    data: StepSource
    loss: Callable[
        ..., tuple[torch.Tensor, torch.Tensor]
    ]  # (model, **inputs) → (loss to optimise, CE to log)
    evaluate: Callable[[torch.nn.Module, Callable], dict[str, float]]  # (model, autocast) → {"val_loss": …}
    identity: dict[str, Any]  # saved in every checkpoint
    run_info: dict[str, Any]  # written to run.json
    check_resume: Callable[[dict, Path], None] = lambda state, path: None  # raise JalmError on a foreign run
    n_params: int = 0
    mfu: Callable[[float], float] | None = None  # tokens/s per device → MFU (GPU runs)
    # LoRA: checkpoints hold only the trainable weights; the frozen base is reloaded from its source.
    frozen_base: bool = False
    extra_metrics: Callable[[], dict[str, Any]] = field(default=lambda: {})


def use_bf16(dtype: str, device: torch.device) -> bool:
    if dtype != "auto":
        return dtype == "bfloat16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.cpu._is_avx512_bf16_supported()


@dataclass
class StepResult:
    loss: float
    grad_norm: float
    verdict: str  # "ok" or the guard's action
    lr: float


class Trainer:
    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: Path,
        env: distrib.DistEnv,
        task: Task,
        grad_accum: int,
        parallel: str = "auto",
        progress: bool = True,
    ):
        self.cfg, self.run_dir, self.env, self.task = cfg, Path(run_dir), env, task
        self.grad_accum, self.progress = grad_accum, progress
        self.parallel = parallel
        self.step = self.start_step = self.tokens_seen = 0
        self.max_steps = cfg.max_steps
        self.guard = SpikeGuard.from_config(cfg)
        self.fault = cfg.extra.get("inject")
        self.pending: dict | None = None  # a checkpoint being written in the background
        self.saved_at = time.perf_counter()
        self._setup()

    # --- set-up -------------------------------------------------------------------------------------

    def _setup(self) -> None:
        from jalm.model.attention import fp32_attention_pays, use_fp32_attention

        cfg, env, model = self.cfg, self.env, self.task.model
        distrib.check_shared_dir(self.run_dir, env)
        if cfg.activation_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if self.task.frozen_base and hasattr(model, "enable_input_require_grads"):
                model.enable_input_require_grads()  # checkpointed blocks need an input that wants grad
        self.bf16 = use_bf16(cfg.dtype, env.device)
        if fp32_attention_pays(env.device, self.bf16):
            use_fp32_attention(model)
        if self.parallel == "auto":
            self.parallel = "fsdp" if self.task.n_params > 500_000_000 else "ddp"
            if self.parallel == "fsdp" and distrib.spans_nodes(env):
                self.parallel = "hsdp"  # shard inside a node, replicate across nodes
        self.raw_model = model
        self.model = distrib.wrap_model(model, env, self.parallel, self.bf16, cfg.shard_group_size)
        # Compiling the loss with the model lets inductor fuse the fp32 cast, log-softmax and NLL over the
        # logits (the largest activation) instead of materialising them: +15-20 % tokens/s on CPU.
        self.step_loss = torch.compile(self.task.loss) if cfg.compile else self.task.loss
        self.optimizer = build_optimizer(self.raw_model, cfg, env.device)
        # Under FSDP's mixed precision the parameters already compute in bf16; autocast covers the rest.
        self.autocast = (
            (lambda: torch.autocast(env.device.type, dtype=torch.bfloat16)) if self.bf16 else nullcontext
        )
        latest = ckpt.latest_checkpoint(self.run_dir)
        self.budget = TimeBudget(cfg.time_budget_s, cfg.calibration_steps)
        if latest is not None:
            self._resume(latest)
        self.budget.start_step = self.start_step
        trackers = []
        if env.is_main:
            info = self._write_run_info()
            trackers = open_trackers(cfg, self.run_dir, self.start_step, info)
        self.log = MetricsLog(
            self.run_dir / "metrics.jsonl",
            enabled=env.is_main,
            truncate_after_step=self.start_step,
            trackers=trackers,
        )

    def _resume(self, latest: Path) -> None:
        state = ckpt.read_state(latest)
        self.task.check_resume(state, latest)
        ckpt.load_checkpoint(latest, self.raw_model, self.optimizer, frozen=self.task.frozen_base)
        self.step = self.start_step = state["step"]
        self.tokens_seen = state["tokens_seen"]
        self.task.data.position = state["sampler_position"]
        if self.cfg.time_budget_s is not None:  # the budget's decision is part of the run; keep it
            self.max_steps = state.get("max_steps", self.max_steps)
        self.budget.load_state(state.get("budget", {}))
        self.guard.load_state(state.get("guard", {}))

    def _write_run_info(self) -> dict:
        info = {
            **self.task.run_info,
            "world_size": self.env.world_size,
            "parallel": self.parallel,
            "grad_accum": self.grad_accum,
            "bf16": self.bf16,
            "attention": getattr(self.raw_model.config, "_attn_implementation", None),
            "config": json.loads(self.cfg.to_json()),
        }
        text = json.dumps(info, indent=2, ensure_ascii=False)
        write_atomic(self.run_dir / RUN_CONFIG, text)
        return info

    # --- one optimizer step -------------------------------------------------------------------------

    def train_step(self) -> tuple[StepResult, int]:
        """Forward/backward over this step's micro-batches, clip, ask the guard, apply or skip."""
        cfg = self.cfg
        lr = lr_at(self.step, cfg.lr, cfg.warmup_steps, self.max_steps, cfg.schedule, cfg.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        micros, step_tokens = self.task.data.next_step()
        # Dropout (LoRA's) draws from the global generator: seed it per step and rank, so a resumed run
        # draws what the uninterrupted one did without saving generator states.
        torch.manual_seed(cfg.seed * 1_000_003 + self.step * 1009 + self.env.rank)
        loss_sum = torch.zeros((), device=self.env.device)
        injecting = self.fault is not None and self.fault.get("step") == self.step
        for index, micro in enumerate(micros):
            last = index == len(micros) - 1
            with self.autocast(), distrib.accumulating(self.model, last):
                loss, ce = self.step_loss(self.model, **micro.inputs)
            if injecting:
                loss, ce = _inject_fault(self.fault, loss), _inject_fault(self.fault, ce)
            (loss / micro.divisor).backward()
            loss_sum += ce.detach() / micro.divisor
        grad_norm = torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), cfg.grad_clip)
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        mean_loss = distrib.all_reduce_mean(loss_sum).item()
        if injecting:
            self.fault = None  # fire once, even if a rollback revisits this step number
        verdict = self.guard.check(self.step, mean_loss, float(grad_norm))
        if verdict == "ok":
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return StepResult(mean_loss, float(grad_norm), verdict, lr), step_tokens

    # --- the loop -----------------------------------------------------------------------------------

    def fit(self) -> dict:
        """Train until max_steps (resuming where the run directory left off); return a summary."""
        from jalm.progress import progress_bar

        bar = progress_bar(
            total=self.max_steps,
            initial=self.start_step,
            desc="train",
            unit="step",
            disable=not (self.progress and self.env.is_main),
        )
        self.started = time.perf_counter()
        self.window_start, self.window_tokens = self.started, 0
        self.model.train()
        stop = distrib.StopRequest(self.env)
        try:
            while self.step < self.max_steps:
                self._run_step(bar)
                signum = stop.agreed()
                if signum and self.step < self.max_steps:
                    bar.close()
                    return self._preempted(signum)
        finally:
            stop.close()
        bar.close()
        return self._finish()

    def _run_step(self, bar) -> None:
        """One optimizer step and what follows it (log, evaluate, save)."""
        cfg = self.cfg
        result, step_tokens = self.train_step()
        self.step += 1
        self.tokens_seen += step_tokens
        self.window_tokens += step_tokens
        bar.update(1)
        if result.verdict != "ok":
            self._guard_event(result)
            if result.verdict == "rollback":
                self._rollback()
                bar.n = self.step
                return
        self.max_steps = self.budget.update(self.step, self.max_steps)
        bar.total = self.max_steps
        if result.verdict == "ok" and (self.step % cfg.log_every == 0 or self.step == self.max_steps):
            self._log_step(result, bar)
        if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < self.max_steps:
            self.log_validation(self.evaluate())
        self._commit_if_written()
        due = cfg.save_every and self.step % cfg.save_every == 0
        if cfg.checkpoint_minutes and not due:  # every rank must agree on a time-based save
            late = time.perf_counter() - self.saved_at >= 60 * cfg.checkpoint_minutes
            due = bool(distrib.any_rank(late, self.env))
        if due and self.step < self.max_steps:
            self.save(background=cfg.async_checkpoint)

    def _preempted(self, signum: int) -> dict:
        """Stop on a signal: the step in flight is done; save it so a rerun (requeue) continues from here."""
        import signal

        name = signal.Signals(signum).name
        self.save()
        self.log.write({"step": self.step, "event": "preempted", "signal": name})
        self.log.close()
        distrib.teardown()
        return {"preempted": name, "steps": self.step}

    def evaluate(self) -> dict[str, float]:
        return self.task.evaluate(self.model, self.autocast)

    def _finish(self) -> dict:
        self.commit()
        val = self.evaluate()
        if self.step > self.start_step:  # a rerun of a finished run changes nothing
            self.log_validation(val)
            self.save()
        self.log.close()
        summary = {}
        if self.env.is_main:
            plot_loss(self.run_dir / "metrics.jsonl", self.run_dir / "loss.png")
            summary = {
                "steps": self.step,
                "tokens": self.tokens_seen,
                "params": self.task.n_params,
                **val,
                "seconds": round(time.perf_counter() - self.started, 1),
                "skipped_steps": self.guard.skipped,
            }
        distrib.teardown()
        return summary

    def _log_step(self, result: StepResult, bar) -> None:
        now = time.perf_counter()
        tps = self.window_tokens / max(now - self.window_start, 1e-9)
        record = {
            "step": self.step,
            "loss": round(result.loss, 5),
            "lr": result.lr,
            "grad_norm": round(result.grad_norm, 5),
            "tokens_per_s": round(tps, 1),
            "tokens": self.tokens_seen,
            "elapsed_s": round(now - self.started, 2),
            "skipped_steps": self.guard.skipped,
            **self.task.extra_metrics(),
        }
        if self.env.device.type == "cuda" and self.task.mfu is not None:
            record["mfu"] = round(self.task.mfu(tps / self.env.world_size), 4)
        self.log.write(record)
        bar.set_postfix(loss=f"{result.loss:.3f}", tok_s=f"{tps:,.0f}")
        self.window_start, self.window_tokens = now, 0

    def log_validation(self, values: dict[str, float]) -> None:
        """Write validation figures for the current step (a NaN, e.g. no held-out data, as null)."""
        record = {"step": self.step}
        record.update({k: round(v, 5) if math.isfinite(v) else None for k, v in values.items()})
        self.log.write(record)

    def _guard_event(self, result: StepResult) -> None:
        self.log.write(
            {
                "step": self.step,
                "event": result.verdict,
                "loss": result.loss,
                "grad_norm": result.grad_norm,
                "median": self.guard.median(),
            }
        )

    # --- checkpoints --------------------------------------------------------------------------------

    def _commit_if_written(self) -> None:
        """Rename a background checkpoint into place once every rank's shards are written."""
        if self.pending is not None and distrib.all_ranks(ckpt.save_done(self.pending), self.env):
            self.commit()

    def commit(self) -> None:
        """Wait for a checkpoint being written (if any) and make it the latest."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            ckpt.commit_save(pending)

    def save(self, background: bool = False) -> None:
        """A checkpoint of this step; with `background`, written while training goes on (the previous
        background write is finished first: at most one in flight)."""
        self.commit()
        self.saved_at = time.perf_counter()
        state = {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "sampler_position": self.task.data.position,
            "max_steps": self.max_steps,
            **self.task.identity,
            "world_size": self.env.world_size,
            "guard": self.guard.state(),
            "budget": self.budget.state(),
        }
        pending = ckpt.begin_save(
            self.run_dir,
            self.step,
            self.raw_model,
            self.optimizer,
            state,
            self.env.is_main,
            self.cfg.keep_last,
            frozen=self.task.frozen_base,
            asynchronous=background,
        )
        if background:
            self.pending = pending
        else:
            ckpt.commit_save(pending)

    def _rollback(self) -> None:
        """Return to the last good checkpoint but keep the data moving on, so the bad window is skipped.

        Without a checkpoint there is nothing to return to: the bad step was already skipped, and the
        step and token counts stay where they are.
        """
        self.commit()
        latest = ckpt.latest_checkpoint(self.run_dir)
        if latest is None:
            return
        position = self.task.data.position
        state = ckpt.load_checkpoint(latest, self.raw_model, self.optimizer, frozen=self.task.frozen_base)
        self.task.data.position = position
        self.guard.rolled_back()
        self.step, self.tokens_seen = state["step"], state["tokens_seen"]


def _inject_fault(fault: dict, loss: torch.Tensor) -> torch.Tensor:
    """Chaos testing of the guard: `extra={"inject": {"step": N, "kind": "nan"|"spike"}}` corrupts step N."""
    return loss * float("nan") if fault.get("kind") == "nan" else loss * 1000.0
