"""What the four experiments share: the run context, the set-up lines of a report, common notes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from jalm.experiment import analysis as an
from jalm.experiment.scale import Scale


@dataclass
class Context:
    out: Path
    cache: Path
    scale: Scale
    command: str
    device: str = "cpu"
    progress: bool = True

    @property
    def runs(self) -> Path:
        return self.out / "runs"


def read_curves(ctx: Context, variants: list[str], seeds: tuple[int, ...]) -> dict[str, list[an.Curve]]:
    return {v: [an.read_curve(ctx.runs / f"{v}-seed{s}") for s in seeds] for v in variants}


def train_variants(
    ctx: Context, overrides: dict[str, dict], steps: int | None = None
) -> tuple[dict, dict[str, dict], dict[str, list[an.Curve]]]:
    """Train each variant (label → training settings) for every seed on the shared base data.

    Returns the base data's record, the runs' results and the loss curves by variant.
    """
    from jalm.experiment.prepare import base_data
    from jalm.experiment.runs import RunSpec, run_grid

    s = ctx.scale
    base = base_data(ctx.cache, s, ctx.progress)
    specs = [RunSpec(v, seed, base["packed"], o) for seed in s.seeds for v, o in overrides.items()]
    results = run_grid(specs, s, ctx.runs, steps=steps, device=ctx.device, progress=ctx.progress)
    return base, results, read_curves(ctx, list(overrides), s.seeds)


def setup_lines(
    ctx: Context, results: dict[str, dict], steps: int, data: str, seeds: tuple[int, ...]
) -> list[str]:
    from jalm.model import get_preset

    s = ctx.scale
    p = get_preset(s.preset)
    params = next(iter(results.values()))["summary"].get("params", 0)
    cfg = next(iter(results.values()))["config"]
    return [
        f"size `{s.name}`: preset `{s.preset}` ({p.layers} layers, hidden {p.hidden}, {params:,} parameters); "
        f"{s.seq_len} tokens × {s.micro_batch_size} sequences = {s.tokens_per_step:,} tokens per step; "
        f"{steps} steps = {steps * s.tokens_per_step:,} tokens per run",
        f"data: {data}; tokenizer: SentencePiece unigram, vocabulary {s.vocab_size:,}",
        f"seeds: {', '.join(map(str, seeds))} (a seed fixes the initial weights and the data order; the variants "
        "of one seed see the same batches, so differences are paired)",
        f"optimizer: AdamW (β1 {cfg['beta1']}, weight decay {cfg['weight_decay']}, gradient clipping "
        f"{cfg['grad_clip']}), {cfg['warmup_steps']} warmup steps, float32 on {ctx.device}; budgets in steps, "
        "so reruns give the same numbers",
        f"training time: {sum(r['seconds'] for r in results.values()):,.0f} s for {len(results)} runs "
        f"(as recorded in runs/*/result.json, on a {os.cpu_count()}-core machine)",
    ]


def base_description(base: dict) -> str:
    return (
        f"the bundled corpus (Wikipedia + Aozora Bunko) after `jalm clean`, "
        f"{base['train_tokens']:,} training / {base['val_tokens']:,} validation tokens"
    )


def status_from_counts(claimed: int, other: int) -> str:
    """For counts of bad events where the claim says `other` has more."""
    if claimed == 0 and other == 0:
        return "not observed"
    return "held" if other > claimed else "did not hold"


def notes() -> list[str]:
    return [
        "Small scale: tiny models and short runs on bundled data. A claim that holds here may not hold for "
        "billions of parameters, and the other way round; rerun with `--size full` or a larger preset to check.",
        "Statuses: held = the claimed-better variant won in every seed; held on average only = better on average "
        "but within the seed spread; did not hold = not better on average; not observed = the event (spike, "
        "divergence) did not happen in any run; no difference = equal values in every seed.",
    ]


def run_numbers(results: dict) -> list[dict]:
    return [{k: r[k] for k in ("name", "variant", "seed", "summary", "seconds")} for r in results.values()]
