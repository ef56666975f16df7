"""PNG plots for the reports: curves per variant (every seed thin, their mean thick) and per-seed bar charts."""

from __future__ import annotations

import math
from pathlib import Path

from jalm.experiment.analysis import Curve, smooth

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mean_curve(curves: list[list[float]]) -> list[float]:
    length = min(len(c) for c in curves)
    out = []
    for i in range(length):
        finite = [c[i] for c in curves if math.isfinite(c[i])]
        out.append(sum(finite) / len(finite) if finite else math.nan)
    return out


def plot_curves(
    groups: dict[str, list[Curve]],
    out: Path,
    title: str,
    smooth_window: int = 1,
    with_lr: bool = False,
    marks: dict[str, list[list[int]]] | None = None,
    ylim_top: float | None = None,
) -> Path:
    """Training loss against step for each variant; `marks` (per variant, per seed) puts an x on spike steps."""
    plt = _pyplot()
    rows = 2 if with_lr else 1
    fig, axes = plt.subplots(rows, 1, figsize=(7, 3.6 * rows), dpi=120, sharex=True, squeeze=False)
    ax = axes[0][0]
    for color, (variant, curves) in zip(COLORS, groups.items()):
        smoothed = [smooth(c.losses, smooth_window) for c in curves]
        for curve, values in zip(curves, smoothed):
            ax.plot(curve.steps, values, color=color, alpha=0.35, linewidth=0.8)
        mean = _mean_curve(smoothed)
        label = f"{variant} (mean of {len(curves)} seed{'s' if len(curves) > 1 else ''})"
        ax.plot(curves[0].steps[: len(mean)], mean, color=color, linewidth=1.8, label=label)
        for curve, seed_marks in zip(curves, (marks or {}).get(variant, [])):
            at = {s: i for i, s in enumerate(curve.steps)}
            xs = [s for s in seed_marks if s in at]
            ys = [curve.losses[at[s]] if math.isfinite(curve.losses[at[s]]) else ax.get_ylim()[1] for s in xs]
            ax.scatter(xs, ys, marker="x", color=color, s=30, zorder=3)
    ax.set_ylabel(
        "training loss (nats/token)" + (f", {smooth_window}-step mean" if smooth_window > 1 else "")
    )
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    if ylim_top is not None:
        ax.set_ylim(top=ylim_top)
    if with_lr:
        lr_ax = axes[1][0]
        for color, (variant, curves) in zip(COLORS, groups.items()):
            lr_ax.plot(curves[0].steps, curves[0].lrs, color=color, label=variant)
        lr_ax.set_ylabel("learning rate")
        lr_ax.grid(alpha=0.3)
        lr_ax.legend()
    axes[-1][0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_bars(panels: list[tuple[str, dict[str, list[float]]]], out: Path, title: str) -> Path:
    """One panel per metric: a bar per variant at the seeds' mean, a dot per seed."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), dpi=120, squeeze=False)
    for ax, (ylabel, values) in zip(axes[0], panels):
        for i, (color, seeds) in enumerate(zip(COLORS, values.values())):
            finite = [v for v in seeds if math.isfinite(v)]
            ax.bar(i, sum(finite) / len(finite) if finite else 0.0, color=color, alpha=0.6)
            ax.scatter([i] * len(finite), finite, color="black", s=14, zorder=3)
        ax.set_xticks(range(len(values)), list(values))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
