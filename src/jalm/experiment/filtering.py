"""A noisy web-like corpus before and after `jalm clean`, same token budget: dev perplexity and repetition."""

from __future__ import annotations

import json
import math
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jalm.experiment import analysis as an
from jalm.experiment.common import (
    Context,
    notes,
    read_curves,
    run_numbers,
    setup_lines,
)
from jalm.experiment.plots import plot_bars, plot_curves
from jalm.experiment.prepare import DEV_FILE, base_data, noisy_data
from jalm.experiment.report import Finding, Report, fmt, fmt_spread, md_table
from jalm.experiment.runs import RunSpec, run_grid
from jalm.experiment.scale import Scale
from jalm.io import write_atomic


@contextmanager
def _transformers_bars(enabled: bool):
    """transformers draws its own bars when saving and loading; silence them with --no-progress."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if not enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was and not enabled:
            hf_logging.enable_progress_bar()


def _evaluate_run(
    run_dir: Path, tokenizer_dir: str, scale: Scale, seed: int, device: str, progress: bool
) -> dict[str, Any]:
    """Export, dev perplexity / bits per character, sampled continuations and their repetition.

    Cached in eval.json with the settings it was measured with; the exported model stays in run_dir/model
    (the checkpoint is deleted once measured), so changed evaluation settings are measured again without
    retraining.
    """
    from jalm.export import export

    settings = {
        "dev_docs": scale.dev_docs,
        "window": scale.seq_len,
        "prompts": scale.prompts,
        "samples_per_prompt": scale.samples_per_prompt,
        "new_tokens": scale.new_tokens,
    }
    cached = run_dir / "eval.json"
    if cached.exists():
        result = json.loads(cached.read_text(encoding="utf-8"))
        if result.get("settings") == settings:
            return result
    with _transformers_bars(progress):
        if not (run_dir / "model" / "jalm.json").exists():  # jalm.json is written last
            export(run_dir, run_dir / "model")
        result = {
            "settings": settings,
            **_measure(run_dir / "model", tokenizer_dir, scale, seed, device, progress),
        }
    write_atomic(cached, json.dumps(result, indent=2) + "\n")
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return result


def _measure(
    model_dir: Path, tokenizer_dir: str, scale: Scale, seed: int, device: str, progress: bool
) -> dict[str, Any]:
    from jalm.eval import ModelOptions, PplConfig, evaluate
    from jalm.eval.lm import resolve_device
    from jalm.generate import generate, load
    from jalm.jsonl import read_texts, write_records
    from jalm.resources import bundled
    from jalm.tokenizer import load_sentencepiece

    device = resolve_device(device)
    dev = bundled(DEV_FILE)
    ppl = evaluate(
        model_dir,
        [PplConfig(data=dev, window=scale.seq_len)],
        limit=scale.dev_docs,
        model=ModelOptions(device=device),
        progress=progress,
    )["tasks"]["ppl"]
    sp = load_sentencepiece(tokenizer_dir)
    model = load(model_dir, device=device)
    prompts = [text[:20] for text in list(read_texts([dev]))[: scale.prompts]]
    samples, rates = [], []
    for i, prompt in enumerate(prompts):
        texts = generate(
            model,
            prompt,
            max_new_tokens=scale.new_tokens,
            do_sample=True,
            num_return_sequences=scale.samples_per_prompt,
            seed=seed * 1000 + i,
            return_full_text=False,
            device=device,
        )
        for text in texts:
            rate = an.repetition_rate(sp.encode(text))
            samples.append({"prompt": prompt, "continuation": text, "repetition_rate": rate})
            if rate is not None:
                rates.append(rate)
    write_records(model_dir.parent / "samples.jsonl", samples)
    result = {
        "ppl": ppl["ppl"],
        "bits_per_char": ppl["bits_per_char"],
        "dev_documents": ppl["documents"],
        "dev_tokens": ppl["tokens"],
        "repetition_rate": sum(rates) / len(rates) if rates else math.nan,
        "samples": len(samples),
        "scored_samples": len(rates),
    }
    return result


def run(ctx: Context) -> Report:
    s = ctx.scale
    base = base_data(ctx.cache, s, ctx.progress)
    noisy = noisy_data(ctx.cache, s, base, ctx.progress)
    variants = ["noisy", "filtered"]
    specs = [RunSpec(v, seed, noisy["packed"][v]["dir"]) for seed in s.filtering_seeds for v in variants]
    results = run_grid(specs, s, ctx.runs, device=ctx.device, progress=ctx.progress, keep_checkpoint=True)
    evals = {
        v: [
            _evaluate_run(ctx.runs / f"{v}-seed{seed}", noisy["tokenizer"], s, seed, ctx.device, ctx.progress)
            for seed in s.filtering_seeds
        ]
        for v in variants
    }
    ppl = {v: [e["ppl"] for e in evals[v]] for v in variants}
    bpc = {v: [e["bits_per_char"] for e in evals[v]] for v in variants}
    rep = {v: [e["repetition_rate"] for e in evals[v]] for v in variants}
    c_ppl = an.compare(ppl["filtered"], ppl["noisy"])
    c_rep = an.compare(rep["filtered"], rep["noisy"])
    return Report(
        name="filtering",
        title="Experiment: data filtering — noisy web-like corpus vs the same after `jalm clean`",
        command=ctx.command,
        setup=setup_lines(ctx, results, s.steps, "see the composition table", s.filtering_seeds)
        + _setup(s, noisy),
        findings=_findings(s, evals, ppl, bpc, rep, c_ppl, c_rep),
        tables=_tables(ctx, evals, noisy["composition"]),
        plots=_plots(ctx, variants, ppl, bpc, rep),
        notes=notes()
        + [
            "The noise is partly synthetic, built to look like what crawls contain; how much of each kind the "
            "cleaner removed is in the composition table, so a reader can judge how close this is to real web text."
        ],
        numbers={
            "runs": run_numbers(results),
            "eval": evals,
            "comparison_ppl": c_ppl,
            "comparison_repetition": c_rep,
            "composition": noisy["composition"],
            "packed": noisy["packed"],
        },
    )


def _setup(s: Scale, noisy: dict[str, Any]) -> list[str]:
    """The set-up lines particular to this experiment: the noisy corpus, the budget, the measures."""
    packed, tokens = noisy["packed"], s.steps * s.tokens_per_step
    return [
        f"noisy corpus: the bundled corpus subset ({noisy['composition'].get('corpus', {}).get('docs', 0)} documents) "
        f"mixed with the bundled raw web pages and SYNTHETIC noise (markup, boilerplate, code, English, listing "
        f"spam, duplicates; generated deterministically by jalm.experiment.noise), {s.noise_ratio:g} noise "
        "character per clean character; filtered = that corpus after `jalm clean` (default settings)",
        f"training tokens available: noisy {packed['noisy']['train_tokens']:,}, filtered "
        f"{packed['filtered']['train_tokens']:,}; both runs train on {tokens:,} tokens (the same budget), "
        "with the same tokenizer (trained on the clean corpus, so per-token perplexities compare)",
        f"dev perplexity: `jalm eval` ppl on the first {s.dev_docs} documents of data/{DEV_FILE} "
        f"(window {s.seq_len}); generations: the first 20 characters of {s.prompts} dev documents as prompts, "
        f"{s.samples_per_prompt} samples each, {s.new_tokens} new tokens, `jalm generate` defaults "
        "(temperature 0.7)",
    ]


def _findings(s: Scale, evals, ppl, bpc, rep, c_ppl, c_rep) -> list[Finding]:
    """The two claims about filtering (perplexity, repetition), each with what was measured."""
    tokens = s.steps * s.tokens_per_step
    dev_docs = evals["noisy"][0]["dev_documents"]
    return [
        Finding(
            "Filtering web text lowers perplexity on clean text",
            f"dev perplexity ({dev_docs} held-out Wikipedia articles) after {tokens:,} training tokens: filtered "
            f"{fmt_spread(ppl['filtered'], 2)}, noisy {fmt_spread(ppl['noisy'], 2)}; bits per character "
            f"{fmt_spread(bpc['filtered'])} vs {fmt_spread(bpc['noisy'])}; filtered lower in {c_ppl['wins']} of "
            f"{c_ppl['seeds']} seeds",
            c_ppl["status"],
        ),
        Finding(
            "Filtering stops repetitive generations",
            f"share of repeated token {an.REPEAT_N}-grams in {evals['noisy'][0]['samples']} sampled continuations "
            f"per run: filtered {fmt_spread(rep['filtered'])}, noisy {fmt_spread(rep['noisy'])}; filtered lower "
            f"in {c_rep['wins']} of {c_rep['seeds']} seeds",
            c_rep["status"],
        ),
    ]


def _tables(ctx: Context, evals, composition: dict[str, Any]) -> list[tuple[str, str]]:
    """Runs, what the cleaner removed from the noisy corpus, and sample continuations."""
    seeds = ctx.scale.filtering_seeds
    run_rows = []
    for v in evals:
        for seed, e in zip(seeds, evals[v]):
            curve = an.read_curve(ctx.runs / f"{v}-seed{seed}")
            run_rows.append(
                [
                    v,
                    seed,
                    fmt(an.final_loss(curve.losses)),
                    fmt(e["ppl"], 2),
                    fmt(e["bits_per_char"]),
                    fmt(e["repetition_rate"]),
                ]
            )
    comp_rows = []
    for label, row in composition.items():
        removed = ", ".join(f"{k} {n}" for k, n in list(row["removed_by"].items())[:4]) or "–"
        comp_rows.append(
            [label, row["docs"], f"{row['chars']:,}", row["kept_docs"], f"{row['kept_chars']:,}", removed]
        )
    examples = []
    for v in evals:
        records = [
            json.loads(line)
            for line in (ctx.runs / f"{v}-seed{seeds[0]}" / "samples.jsonl")
            .read_text(encoding="utf-8")
            .splitlines()[:2]
        ]
        examples += [[v, r["prompt"], r["continuation"][:120], fmt(r["repetition_rate"])] for r in records]
    run_headers = [
        "training data",
        "seed",
        "final train loss (own data)",
        "dev perplexity",
        "bits per character",
        f"repeated {an.REPEAT_N}-grams",
    ]
    comp_headers = [
        "part",
        "documents",
        "characters",
        "kept documents",
        "kept characters",
        "removed by (top rules)",
    ]
    example_headers = ["training data", "prompt", "continuation (first 120 characters)", "repetition"]
    return [
        ("Runs", md_table(run_headers, run_rows)),
        ("What `jalm clean` removed from the noisy corpus", md_table(comp_headers, comp_rows)),
        (f"Sample continuations (seed {seeds[0]})", md_table(example_headers, examples)),
    ]


def _plots(ctx: Context, variants: list[str], ppl, bpc, rep) -> list[tuple[str, str]]:
    """Dev perplexity, bits per character and repetition per seed; the training loss curves."""
    return [
        (
            "Dev perplexity, bits per character and repetition per seed (dots) and mean (bars)",
            plot_bars(
                [
                    ("dev perplexity", ppl),
                    ("bits per character", bpc),
                    (f"repeated {an.REPEAT_N}-gram share", rep),
                ],
                ctx.out / "filtering.png",
                "Noisy vs filtered training data, same token budget",
            ).name,
        ),
        (
            "Training loss on each run's own training data (20-step mean; not comparable across data sets)",
            plot_curves(
                read_curves(ctx, variants, ctx.scale.filtering_seeds),
                ctx.out / "curves.png",
                "Training loss: noisy vs filtered corpus",
                20,
            ).name,
        ),
    ]
