"""The training loop: one readable function from packed tokens to checkpoints and metrics.

Order of set-up follows torchtitan: build the model → init (seeded, identical on every rank) →
activation checkpointing → shard/replicate → compile → optimizer → resume. Each optimizer step consumes
`micro_batch_size × grad_accum × world_size` windows (grad_accum may follow from `global_batch_tokens`,
so one command keeps its global batch at any world size) from a deterministic sampler whose position is
saved with the checkpoint, so a resumed run continues on exactly the data it would have seen.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from jalm.data import SequenceSampler, get_windows, load_tokens, num_windows, read_meta
from jalm.errors import JalmError
from jalm.model import build_model, count_parameters, get_preset, hf_config, init_weights
from jalm.model.attention import fp32_attention_pays, use_fp32_attention
from jalm.train import checkpoint as ckpt
from jalm.train import distributed as distrib
from jalm.train.config import TrainConfig, grad_accum_for
from jalm.train.guard import SpikeGuard
from jalm.train.metrics import MetricsLog, plot_loss
from jalm.train.optim import build_optimizer
from jalm.train.schedule import lr_at

RUN_CONFIG = "run.json"


def use_bf16(dtype: str, device: torch.device) -> bool:
    if dtype != "auto":
        return dtype == "bfloat16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.cpu._is_avx512_bf16_supported()


def _check_run_dir(run_dir: Path, cfg: TrainConfig, data_dir: Path) -> None:
    """A run directory belongs to one preset and data set; refuse to resume anything else."""
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


@torch.no_grad()
def evaluate_loss(
    model, tokens: np.ndarray, seq_len: int, batches: int, micro: int, device, autocast
) -> float:
    total, count = 0.0, 0
    windows = num_windows(tokens, seq_len)
    if windows == 0:
        return float("nan")
    model.eval()
    for b in range(batches):
        idx = np.arange(b * micro, min((b + 1) * micro, windows))
        if len(idx) == 0:
            break
        batch = torch.from_numpy(get_windows(tokens, idx, seq_len)).to(device)
        with autocast():
            logits = model(input_ids=batch[:, :-1]).logits
        total += F.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1), reduction="sum"
        ).item()
        count += batch[:, 1:].numel()
    model.train()
    return total / max(count, 1)


def train(
    cfg: TrainConfig,
    data_dir: str | Path,
    run_dir: str | Path,
    device: str = "auto",
    parallel: str = "auto",
    progress: bool = True,
) -> dict:
    """Train (or resume) a run; returns a summary dict. Rerunning with the same run_dir resumes."""
    from tqdm import tqdm

    cfg.validate()
    data_dir, run_dir = Path(data_dir), Path(run_dir)
    env = distrib.setup(device)
    grad_accum = grad_accum_for(cfg, env.world_size)
    meta = read_meta(data_dir)
    preset = get_preset(cfg.preset)
    if cfg.seq_len > preset.max_positions:
        raise JalmError(
            f"seq_len {cfg.seq_len} exceeds preset {preset.name!r}'s {preset.max_positions} positions"
        )
    tokens = load_tokens(data_dir, "train")
    val_tokens = load_tokens(data_dir, "val")
    sampler = SequenceSampler(num_windows(tokens, cfg.seq_len), seed=cfg.seed)
    if sampler.num_windows < 1:
        raise JalmError(f"{data_dir}: too few training tokens for one sequence of {cfg.seq_len + 1}")
    if env.is_main:
        _check_run_dir(run_dir, cfg, data_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    distrib.barrier()

    config = hf_config(preset, meta["vocab_size"])
    torch.manual_seed(cfg.seed)
    model = build_model(config, env.device)
    init_weights(
        model,
        preset.hidden,
        preset.layers,
        cfg.init,
        generator=torch.Generator(env.device).manual_seed(cfg.seed),
    )
    if cfg.init_from:
        load_hf_weights(model, cfg.init_from)
    n_params = count_parameters(model)
    if cfg.activation_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    bf16 = use_bf16(cfg.dtype, env.device)
    if fp32_attention_pays(env.device, bf16):
        use_fp32_attention(model)
    if parallel == "auto":
        parallel = "fsdp" if n_params > 500_000_000 else "ddp"
    raw_model = model
    model = distrib.wrap_model(model, env, parallel, bf16)
    # Compiling the loss with the model lets inductor fuse the fp32 cast, log-softmax and NLL over the
    # logits (the largest activation) instead of materialising them: +15-20 % tokens/s on CPU.
    step_loss = torch.compile(forward_loss) if cfg.compile else forward_loss
    optimizer = build_optimizer(raw_model, cfg, env.device)
    # Under FSDP's mixed precision the parameters already compute in bf16; autocast covers the rest.
    autocast = (lambda: torch.autocast(env.device.type, dtype=torch.bfloat16)) if bf16 else nullcontext

    start_step, tokens_seen, max_steps = 0, 0, cfg.max_steps
    guard = SpikeGuard.from_config(cfg)
    latest = ckpt.latest_checkpoint(run_dir)
    if latest is not None:
        state = ckpt.read_state(latest)
        if state.get("preset") != cfg.preset or state.get("vocab_size") != meta["vocab_size"]:
            raise JalmError(
                f"{latest}: checkpoint of preset {state.get('preset')!r} (vocab {state.get('vocab_size')}), "
                f"but this run is {cfg.preset!r} with a {meta['vocab_size']}-piece tokenizer"
            )
        ckpt.load_checkpoint(latest, raw_model, optimizer)
        start_step, tokens_seen = state["step"], state["tokens_seen"]
        sampler.position = state["sampler_position"]
        if cfg.time_budget_s is not None:  # the budget's decision is part of the run; keep it
            max_steps = state.get("max_steps", max_steps)
        guard.load_state(state.get("guard", {}))
    if env.is_main:
        (run_dir / RUN_CONFIG).write_text(
            json.dumps(
                {
                    "preset": cfg.preset,
                    "params": n_params,
                    "data": str(data_dir),
                    "world_size": env.world_size,
                    "parallel": parallel,
                    "grad_accum": grad_accum,
                    "bf16": bf16,
                    "attention": raw_model.config._attn_implementation,
                    "config": json.loads(cfg.to_json()),
                    "model_config": config.to_dict(),
                },
                indent=2,
                ensure_ascii=False,
            ),
            encoding="utf-8",
        )
    log = MetricsLog(
        run_dir / "metrics.jsonl",
        enabled=env.is_main,
        truncate_after_step=start_step,
        tensorboard_dir=run_dir / "tensorboard" if cfg.tensorboard else None,
    )

    per_step = cfg.micro_batch_size * grad_accum * env.world_size
    tokens_per_step = per_step * cfg.seq_len
    bar = tqdm(
        total=max_steps, initial=start_step, desc="train", unit="step", disable=not (progress and env.is_main)
    )
    started = time.perf_counter()
    window_start, window_tokens = time.perf_counter(), 0
    step = start_step
    summary = {}
    fault = cfg.extra.get("inject")
    # 0: warming up, 1: calibrating, 2: decided (re-estimate pending), 3: final
    budget_phase = 0 if cfg.time_budget_s is not None and latest is None else 3
    mark_time, mark_step = time.perf_counter(), start_step
    model.train()
    while step < max_steps:
        lr = lr_at(step, cfg.lr, cfg.warmup_steps, max_steps, cfg.schedule, cfg.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        global_idx = sampler.take(per_step)
        mine = global_idx[env.rank :: env.world_size]
        loss_sum = torch.zeros((), device=env.device)
        for micro in range(grad_accum):
            idx = mine[micro * cfg.micro_batch_size : (micro + 1) * cfg.micro_batch_size]
            batch = torch.from_numpy(get_windows(tokens, idx, cfg.seq_len)).to(env.device, non_blocking=True)
            sync = micro == grad_accum - 1 or not hasattr(model, "no_sync")
            with autocast(), nullcontext() if sync else model.no_sync():
                loss, ce = step_loss(model, batch, cfg.z_loss)
            if fault is not None and fault.get("step") == step:
                loss, ce = _inject_fault(fault, loss), _inject_fault(fault, ce)
            (loss / grad_accum).backward()
            loss_sum += ce.detach() / grad_accum
        grad_norm = torch.nn.utils.clip_grad_norm_(raw_model.parameters(), cfg.grad_clip)
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        mean_loss = distrib.all_reduce_mean(loss_sum).item()
        if fault is not None and fault.get("step") == step:
            fault = None  # fire once, even if a rollback revisits this step number
        verdict = guard.check(step, mean_loss, float(grad_norm))
        if verdict == "ok":
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        tokens_seen += tokens_per_step
        window_tokens += tokens_per_step
        bar.update(1)
        if verdict != "ok":
            log.write(
                {
                    "step": step,
                    "event": verdict,
                    "loss": mean_loss,
                    "grad_norm": float(grad_norm),
                    "median": guard.median(),
                }
            )
            if verdict == "rollback":
                step, tokens_seen = _rollback(run_dir, raw_model, optimizer, sampler, guard, step)
                bar.n = step
                continue

        # Time budget: skip the first steps (compilation, kernel set-up), measure for
        # `calibration_steps` steps or 15 % of the budget, then fix max_steps so the run and its cosine
        # schedule end on time; at half the budget re-estimate once from the steady speed since then.
        # Rank 0 decides for everyone; the decision is saved with the checkpoint.
        if cfg.time_budget_s is not None and budget_phase < 3 and step - start_step >= 3:
            now = time.perf_counter()
            if budget_phase == 0:
                mark_time, mark_step, budget_phase = now, step, 1
            else:
                measured = step - mark_step
                if budget_phase == 1:
                    due = measured >= cfg.calibration_steps or (
                        now - mark_time >= 0.15 * cfg.time_budget_s and measured >= 2
                    )
                else:
                    due = now - started >= 0.5 * cfg.time_budget_s and measured >= 2
                if distrib.broadcast_object(due):
                    remaining = max(0.0, cfg.time_budget_s - (now - started))
                    decided = step + int(remaining / ((now - mark_time) / measured))
                    max_steps = int(distrib.broadcast_object(max(decided, step + 1)))
                    bar.total = max_steps
                    mark_time, mark_step, budget_phase = now, step, budget_phase + 1
        if verdict == "ok" and (step % cfg.log_every == 0 or step == max_steps):
            now = time.perf_counter()
            tps = window_tokens / max(now - window_start, 1e-9)
            record = {
                "step": step,
                "loss": round(mean_loss, 5),
                "lr": lr,
                "grad_norm": round(float(grad_norm), 5),
                "tokens_per_s": round(tps, 1),
                "tokens": tokens_seen,
                "elapsed_s": round(now - started, 2),
                "skipped_steps": guard.skipped,
            }
            if env.device.type == "cuda":
                record["mfu"] = round(mfu(n_params, preset, cfg.seq_len, tps / env.world_size), 4)
            log.write(record)
            bar.set_postfix(loss=f"{mean_loss:.3f}", tok_s=f"{tps:,.0f}")
            window_start, window_tokens = now, 0
        if cfg.eval_every and step % cfg.eval_every == 0 and step < max_steps:
            val = evaluate_loss(
                model,
                val_tokens,
                cfg.seq_len,
                cfg.eval_batches,
                cfg.micro_batch_size,
                env.device,
                autocast,
            )
            log.write({"step": step, "val_loss": round(val, 5) if math.isfinite(val) else None})
        if cfg.save_every and step % cfg.save_every == 0 and step < max_steps:
            _save(run_dir, step, raw_model, optimizer, cfg, meta, sampler, tokens_seen, max_steps, guard, env)
    bar.close()
    val = evaluate_loss(
        model, val_tokens, cfg.seq_len, cfg.eval_batches, cfg.micro_batch_size, env.device, autocast
    )
    if step > start_step:  # a rerun of a finished run changes nothing
        log.write({"step": step, "val_loss": round(val, 5) if math.isfinite(val) else None})
        _save(run_dir, step, raw_model, optimizer, cfg, meta, sampler, tokens_seen, max_steps, guard, env)
    log.close()
    if env.is_main:
        plot_loss(run_dir / "metrics.jsonl", run_dir / "loss.png")
        summary = {
            "steps": step,
            "tokens": tokens_seen,
            "params": n_params,
            "val_loss": val,
            "seconds": round(time.perf_counter() - started, 1),
            "skipped_steps": guard.skipped,
        }
    distrib.teardown()
    return summary


def load_hf_weights(model: torch.nn.Module, hf_dir: str | Path) -> None:
    """Copy the weights of a Hugging Face directory into `model`, demanding the same layout and shapes."""
    from transformers import AutoModelForCausalLM

    from jalm.hf import check_model_dir

    path = check_model_dir(hf_dir, need_tokenizer=False)
    source = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if type(source) is not type(model):
        raise JalmError(f"{path}: a {type(source).__name__}, but the preset builds a {type(model).__name__}")
    theirs, ours = source.state_dict(), model.state_dict()
    for name, tensor in ours.items():
        if name not in theirs or theirs[name].shape != tensor.shape:
            got = tuple(theirs[name].shape) if name in theirs else "missing"
            raise JalmError(
                f"{path}: {name} is {got}, the preset needs {tuple(tensor.shape)}; pick the matching --preset"
            )
    model.load_state_dict({name: theirs[name] for name in ours})


def _inject_fault(fault: dict, loss: torch.Tensor) -> torch.Tensor:
    """Chaos testing of the guard: `extra={"inject": {"step": N, "kind": "nan"|"spike"}}` corrupts step N."""
    return loss * float("nan") if fault.get("kind") == "nan" else loss * 1000.0


def _save(run_dir, step, model, optimizer, cfg, meta, sampler, tokens_seen, max_steps, guard, env) -> None:
    state = {
        "step": step,
        "tokens_seen": tokens_seen,
        "sampler_position": sampler.position,
        "max_steps": max_steps,
        "preset": cfg.preset,
        "vocab_size": meta["vocab_size"],
        "world_size": env.world_size,
        "guard": guard.state(),
    }
    ckpt.save_checkpoint(run_dir, step, model, optimizer, state, env.is_main, cfg.keep_last)


def _rollback(run_dir, model, optimizer, sampler, guard, step: int) -> tuple[int, int]:
    """Return to the last good checkpoint but keep the sampler moving on, so the bad data window is skipped."""
    latest = ckpt.latest_checkpoint(run_dir)
    if latest is None:
        return step, 0  # nothing to roll back to: the step was already skipped
    position = sampler.position
    state = ckpt.load_checkpoint(latest, model, optimizer)
    sampler.position = position
    guard.rolled_back()
    return state["step"], state["tokens_seen"]


def mfu(
    n_params: int, preset, seq_len: int, tokens_per_s_per_device: float, peak_flops: float | None = None
) -> float:
    """Model FLOPs utilisation (PaLM's formula: 6N + 12·L·H·T per token) against the device's bf16 peak."""
    if peak_flops is None:
        peak_flops = _device_peak_flops()
    flops_per_token = 6 * n_params + 12 * preset.layers * preset.hidden * seq_len
    return flops_per_token * tokens_per_s_per_device / peak_flops if peak_flops else math.nan


def _device_peak_flops() -> float:
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else ""
    # Dense bf16 peaks from the data sheets; the PCIe H100 runs at lower clocks than the SXM part.
    peaks = (
        ("H200", 989e12),
        ("H100 PCIe", 756e12),
        ("H100", 989e12),
        ("A100", 312e12),
        ("L4", 121e12),
        ("A10", 125e12),
    )
    for key, flops in peaks:
        if key in name:
            return flops
    return 0.0
