"""Cosine vs inverse square root at the same peak LR: final loss, time spent at high LR, stability."""

from __future__ import annotations

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
    s = ctx.scale
    variants = ["cosine", "inverse_sqrt"]
    base, results, curves = train_variants(ctx, {v: {"schedule": v} for v in variants})
    val = {v: [c.val_loss for c in curves[v]] for v in variants}
    final = {v: [an.final_loss(c.losses) for c in curves[v]] for v in variants}
    high = {v: an.steps_above(curves[v][0]) for v in variants}
    mean_lr = {v: sum(curves[v][0].lrs) / len(curves[v][0].lrs) for v in variants}
    spikes = {v: [an.spikes(c.losses, c.steps) for c in curves[v]] for v in variants}
    n_spikes = {v: sum(len(x) for x in spikes[v]) for v in variants}
    steps = s.steps
    tokens = steps * s.tokens_per_step
    peak = next(iter(results.values()))["config"]["lr"]

    ends = an.compare(val["cosine"], val["inverse_sqrt"])
    findings = _findings(val, ends, high, mean_lr, n_spikes, steps, tokens)
    rows = []
    for v in variants:
        for seed, c, sp in zip(s.seeds, curves[v], spikes[v]):
            rows.append([v, seed, fmt(an.final_loss(c.losses)), fmt(c.val_loss), an.steps_above(c), len(sp)])
    spread_rows = [[v, fmt_spread(final[v]), fmt_spread(val[v])] for v in variants]
    plots = [
        (
            f"Training loss (20-step mean) and learning rate, peak {peak:g}, {len(s.seeds)} seeds",
            plot_curves(
                curves, ctx.out / "curves.png", "LR schedule: cosine vs inverse square root", 20, True
            ).name,
        ),
        (
            "Final losses per seed (dots) and their mean (bars)",
            plot_bars(
                [("final train loss", final), ("validation loss", val)],
                ctx.out / "final_loss.png",
                "End of training",
            ).name,
        ),
    ]
    return Report(
        name="schedule",
        title="Experiment: learning-rate schedule — cosine vs inverse square root",
        command=ctx.command,
        setup=setup_lines(ctx, results, steps, base_description(base), s.seeds)
        + [
            f"both schedules: linear warmup to the same peak LR {peak:g}, then cosine to 10% of the peak at the "
            "last step, or peak·√(warmup/step) (never below 10% of the peak)"
        ],
        findings=findings,
        tables=[
            (
                "Runs",
                md_table(
                    [
                        "schedule",
                        "seed",
                        "final train loss",
                        "validation loss",
                        "steps at LR ≥ ½ peak",
                        "spikes",
                    ],
                    rows,
                ),
            ),
            (
                "Spread over seeds (mean ± std (min–max))",
                md_table(["schedule", "final train loss", "validation loss"], spread_rows),
            ),
        ],
        plots=plots,
        notes=notes(),
        numbers={
            "runs": run_numbers(results),
            "val_loss": val,
            "final_train_loss": final,
            "steps_at_high_lr": high,
            "spikes": n_spikes,
            "comparison": ends,
        },
    )


def _findings(val, ends, high, mean_lr, n_spikes, steps: int, tokens: int) -> list[Finding]:
    """The seed's three claims about the schedules, each with what was measured."""
    return [
        Finding(
            "Cosine decay ends at a lower loss than inverse square root at the same peak LR",
            f"validation loss after {tokens:,} tokens: cosine {fmt_spread(val['cosine'])}, inverse sqrt "
            f"{fmt_spread(val['inverse_sqrt'])}; cosine lower in {ends['wins']} of {ends['seeds']} seeds "
            f"(mean difference {fmt(ends['difference'])})",
            ends["status"],
        ),
        Finding(
            "Cosine spends longer at a high learning rate",
            f"steps with LR ≥ half the peak: cosine {high['cosine']}, inverse sqrt {high['inverse_sqrt']} of "
            f"{steps}; mean LR {mean_lr['cosine']:.2e} vs {mean_lr['inverse_sqrt']:.2e}",
            "held" if high["cosine"] > high["inverse_sqrt"] else "did not hold",
        ),
        Finding(
            "Inverse square root is more stable",
            f"loss spikes (rule below), all seeds: inverse sqrt {n_spikes['inverse_sqrt']}, cosine "
            f"{n_spikes['cosine']}",
            status_from_counts(n_spikes["inverse_sqrt"], n_spikes["cosine"]),
        ),
    ]
