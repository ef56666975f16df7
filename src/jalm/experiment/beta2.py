"""Adam β2 0.95 vs 0.999 at a high learning rate, spike guard off: spikes counted, divergence noted."""

from __future__ import annotations

import math

from jalm.experiment import analysis as an
from jalm.experiment.common import (
    Context,
    base_description,
    notes,
    run_numbers,
    setup_lines,
    status_from_counts,
    train_variants,
)
from jalm.experiment.plots import plot_bars, plot_curves
from jalm.experiment.report import Finding, Report, fmt, fmt_spread, md_table


def run(ctx: Context) -> Report:
    from jalm.train.config import default_config

    s = ctx.scale
    lr = default_config(s.preset).lr * s.beta2_lr_factor
    labels = {"beta2_0.95": 0.95, "beta2_0.999": 0.999}
    variants = list(labels)
    settings = {v: {"beta2": b, "lr": lr, "spike_action": "off"} for v, b in labels.items()}
    base, results, curves = train_variants(ctx, settings, steps=s.beta2_steps)
    spikes = {v: [an.spikes(c.losses, c.steps) for c in curves[v]] for v in variants}
    counts = {v: [len(x) for x in spikes[v]] for v in variants}
    total = {v: sum(counts[v]) for v in variants}
    div = {v: [an.diverged(c.losses) for c in curves[v]] for v in variants}
    n_div = {v: sum(div[v]) for v in variants}
    final = {v: [an.final_loss(c.losses) for c in curves[v]] for v in variants}
    worst = {
        v: [
            max((x for x in c.losses[s.warmup_steps :] if math.isfinite(x)), default=math.nan)
            - an.final_loss(c.losses)
            for c in curves[v]
        ]
        for v in variants
    }
    fin = an.compare(final["beta2_0.95"], final["beta2_0.999"])
    findings = _findings(len(s.seeds), counts, total, n_div, final, fin)
    rows = _rows(s.seeds, curves, spikes, counts, div, final)
    plots = _plots(ctx, curves, spikes, counts, final, lr)
    return Report(
        name="beta2",
        title="Experiment: Adam β2 — 0.95 vs 0.999 at a high learning rate",
        command=ctx.command,
        setup=setup_lines(ctx, results, s.beta2_steps, base_description(base), s.seeds)
        + [
            f"peak LR {lr:g} ({s.beta2_lr_factor:g}× the preset's {lr / s.beta2_lr_factor:g}), cosine schedule; the "
            "spike guard is off (spike_action off) so every spike stays in the curve; loss logged every step",
            f"a spike: a step whose loss exceeds {an.SPIKE_FACTOR}× the median of the {an.SPIKE_WINDOW} steps "
            "before it (consecutive such steps count once); rule fixed before the runs",
        ],
        findings=findings,
        tables=[
            (
                "Runs",
                md_table(
                    [
                        "β2",
                        "seed",
                        "spikes",
                        "spike steps",
                        "diverged",
                        "final train loss",
                        "validation loss",
                    ],
                    rows,
                ),
            )
        ],
        plots=plots,
        notes=notes()
        + [
            "Largest loss after warmup above the final loss, per seed: "
            + "; ".join(f"{v.replace('_', ' ')} {', '.join(fmt(x) for x in worst[v])}" for v in variants)
        ],
        numbers={
            "runs": run_numbers(results),
            "lr": lr,
            "spikes": spikes,
            "spike_counts": counts,
            "diverged": div,
            "final_train_loss": final,
            "comparison_final": fin,
        },
    )


def _findings(seeds: int, counts, total, n_div, final, fin) -> list[Finding]:
    """The claims about β2 (spikes, divergence, final loss), each with what was measured."""
    return [
        Finding(
            "β2 = 0.999 gives loss spikes; 0.95 is more stable",
            f"loss spikes over {seeds} seeds: β2 0.95 {total['beta2_0.95']} "
            f"(per seed {counts['beta2_0.95']}), β2 0.999 {total['beta2_0.999']} (per seed {counts['beta2_0.999']})",
            status_from_counts(total["beta2_0.95"], total["beta2_0.999"]),
        ),
        Finding(
            "… up to divergence",
            f"diverged runs (NaN, or final loss above the first): β2 0.95 {n_div['beta2_0.95']} of "
            f"{seeds}, β2 0.999 {n_div['beta2_0.999']} of {seeds}",
            status_from_counts(n_div["beta2_0.95"], n_div["beta2_0.999"]),
        ),
        Finding(
            "(not a claim of the seed) β2 0.95 also ends lower",
            f"final training loss: 0.95 {fmt_spread(final['beta2_0.95'])}, 0.999 "
            f"{fmt_spread(final['beta2_0.999'])}; 0.95 lower in {fin['wins']} of {fin['seeds']} seeds",
            fin["status"],
        ),
    ]


def _plots(ctx: Context, curves, spikes, counts, final, lr: float) -> list[tuple[str, str]]:
    """The loss curves with the spikes marked, and spikes and final loss per seed."""
    variants = list(curves)
    return [
        (
            f"Training loss at every step, peak LR {lr:g}; × marks a spike",
            plot_curves(
                curves,
                ctx.out / "curves.png",
                "Adam β2: 0.95 vs 0.999 at a high learning rate",
                1,
                marks=spikes,
            ).name,
        ),
        (
            "Spikes and final loss per seed (dots) and mean (bars)",
            plot_bars(
                [
                    ("loss spikes", {v: [float(x) for x in counts[v]] for v in variants}),
                    ("final train loss", final),
                ],
                ctx.out / "spikes.png",
                "Stability",
            ).name,
        ),
    ]


def _rows(seeds, curves, spikes, counts, div, final) -> list[list]:
    """One table row per run: spikes, divergence, final and validation loss."""
    rows = []
    for v in curves:
        for i, seed in enumerate(seeds):
            rows.append(
                [
                    v.replace("_", " "),
                    seed,
                    counts[v][i],
                    ", ".join(map(str, spikes[v][i])) or "–",
                    "yes" if div[v][i] else "no",
                    fmt(final[v][i]),
                    fmt(curves[v][i].val_loss),
                ]
            )
    return rows
