"""Numbers read back from the runs' metrics.jsonl: final losses, spikes, divergence, repetition, spreads, verdicts."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

# A spike: a step whose training loss exceeds SPIKE_FACTOR × the median of the SPIKE_WINDOW losses before
# it (once SPIKE_MIN_HISTORY are known). Consecutive spiking steps are one spike. Fixed before any run.
SPIKE_FACTOR = 1.2
SPIKE_WINDOW = 20
SPIKE_MIN_HISTORY = 10
FINAL_SHARE = 0.1  # "final training loss" = mean over the last 10% of the logged steps
REPEAT_N = 4  # repetition rate = share of repeated token 4-grams in a continuation


@dataclass
class Curve:
    steps: list[int]
    losses: list[float]
    lrs: list[float]
    val_loss: float  # the last validation loss logged (at the end of the run)
    tokens: int  # tokens trained on at the last logged step


def read_curve(run_dir: str | Path) -> Curve:
    from jalm.train.metrics import read_metrics

    records = read_metrics(Path(run_dir) / "metrics.jsonl")
    train = [r for r in records if "loss" in r and "event" not in r]
    # A non-finite validation loss is logged as null.
    vals = [math.nan if r["val_loss"] is None else r["val_loss"] for r in records if "val_loss" in r]
    return Curve(
        steps=[r["step"] for r in train],
        losses=[math.nan if r["loss"] is None else float(r["loss"]) for r in train],
        lrs=[float(r["lr"]) for r in train],
        val_loss=float(vals[-1]) if vals else math.nan,
        tokens=train[-1]["tokens"] if train else 0,
    )


def final_loss(losses: list[float], share: float = FINAL_SHARE) -> float:
    """Mean of the last `share` of the losses (NaN if any of them is not finite)."""
    if not losses:
        return math.nan
    tail = losses[-max(1, round(len(losses) * share)) :]
    return math.fsum(tail) / len(tail)


def loss_at_fraction(curve: Curve, fraction: float, share: float = FINAL_SHARE) -> float:
    """Mean training loss over the `share` of logged steps that end at `fraction` of the run."""
    end = max(1, round(len(curve.losses) * fraction))
    return final_loss(curve.losses[:end], share / max(fraction, 1e-9))


def spikes(
    losses: list[float],
    steps: list[int] | None = None,
    factor: float = SPIKE_FACTOR,
    window: int = SPIKE_WINDOW,
    min_history: int = SPIKE_MIN_HISTORY,
) -> list[int]:
    """Steps where a spike starts (see SPIKE_FACTOR); a non-finite loss counts as a spike."""
    steps = steps if steps is not None else list(range(1, len(losses) + 1))
    found, inside = [], False
    for i, loss in enumerate(losses):
        history = [x for x in losses[max(0, i - window) : i] if math.isfinite(x)]
        spiking = not math.isfinite(loss) or (
            len(history) >= min_history and loss > factor * statistics.median(history)
        )
        if spiking and not inside:
            found.append(steps[i])
        inside = spiking
    return found


def diverged(losses: list[float]) -> bool:
    """A non-finite loss anywhere, or a final loss above the first logged one."""
    if not losses:
        return False
    if not all(math.isfinite(x) for x in losses):
        return True
    return final_loss(losses) > losses[0]


def steps_above(curve: Curve, share_of_peak: float = 0.5) -> int:
    """Logged steps whose learning rate is at least `share_of_peak` × the run's peak."""
    peak = max(curve.lrs, default=0.0)
    return sum(1 for lr in curve.lrs if lr >= share_of_peak * peak)


def repetition_rate(ids: list[int], n: int = REPEAT_N) -> float | None:
    """Share of the n-grams of `ids` that repeat an earlier n-gram of the same sequence (None if too short)."""
    grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
    if not grams:
        return None
    return 1.0 - len(set(grams)) / len(grams)


def spread(values: list[float]) -> dict[str, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan, "n": len(values)}
    return {
        "mean": statistics.fmean(finite),
        "std": statistics.stdev(finite) if len(finite) > 1 else 0.0,
        "min": min(finite),
        "max": max(finite),
        "n": len(values),
    }


def compare(claimed: list[float], other: list[float], lower_is_better: bool = True) -> dict:
    """Paired comparison over seeds (same order): does the claimed-better variant win, and in how many seeds?

    "held": better in every seed; "no difference": equal in every seed; "held on average only": better on average but not in every seed (the
    difference is within the seed spread); "did not hold": not better on average. A non-finite value
    (a diverged run) always loses.
    """
    sign = 1.0 if lower_is_better else -1.0

    def key(v: float) -> float:
        return sign * v if math.isfinite(v) else math.inf

    wins = sum(1 for a, b in zip(claimed, other) if key(a) < key(b))
    n = len(claimed)
    mean_a, mean_b = spread(claimed)["mean"], spread(other)["mean"]
    lost_a = sum(1 for v in claimed if not math.isfinite(v))
    lost_b = sum(1 for v in other if not math.isfinite(v))
    better_on_average = lost_a < lost_b if lost_a != lost_b else key(mean_a) < key(mean_b)
    if wins == 0 and lost_a == lost_b and all(a == b for a, b in zip(claimed, other)):
        status = "no difference"
    elif wins == n and n > 0:
        status = "held"
    elif better_on_average:
        status = "held on average only"
    else:
        status = "did not hold"
    return {
        "status": status,
        "wins": wins,
        "seeds": n,
        "claimed_mean": mean_a,
        "other_mean": mean_b,
        "difference": mean_a - mean_b if math.isfinite(mean_a) and math.isfinite(mean_b) else math.nan,
    }


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average (non-finite values are left out of the mean)."""
    out = []
    for i in range(len(values)):
        part = [v for v in values[max(0, i - window + 1) : i + 1] if math.isfinite(v)]
        out.append(statistics.fmean(part) if part else math.nan)
    return out
