"""DIR/report.md and DIR/report.png: what each rule removed, how much, with examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jalm.corpus.io import atomic_path


def write_chart(path: Path, stats: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rules = list(stats["rejected"])[::-1]
    docs = [stats["rejected"][r] for r in rules]
    mb = [stats["bytes"]["rejected"].get(r, 0) / 1e6 for r in rules]
    height = 1.2 + 0.35 * max(len(rules), 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, height), sharey=True)
    left.barh(rules, docs, color="#c0504d")
    left.set_xlabel("documents removed")
    right.barh(rules, mb, color="#4f81bd")
    right.set_xlabel("MB removed")
    for axis, values, fmt in ((left, docs, "{:d}"), (right, mb, "{:.2f}")):
        for y, value in enumerate(values):
            axis.text(value, y, " " + fmt.format(value), va="center", fontsize=8)
    kept = stats["kept"]
    fig.suptitle(
        f"jalm clean: {stats['input']} docs in, {kept} kept, {stats['rejected_total']} rejected, {stats['malformed']} quarantined",
        fontsize=10,
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _snippet(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    flat = flat.replace("|", "\\|").replace("<", "&lt;")
    return flat[:limit] + ("…" if len(flat) > limit else "")


def write_report(out: Path, stats: dict[str, Any]) -> None:
    write_chart(out / "report.png", stats)
    n = max(stats["input"], 1)
    mb_in = stats["bytes"]["input"] / 1e6
    t = stats.get("timings", {})
    lines = [
        "# jalm clean report",
        "",
        f"{stats['input']} documents ({mb_in:.2f} MB) in: **{stats['kept']} kept** ({100 * stats['kept'] / n:.1f}%), "
        f"{stats['rejected_total']} rejected, {stats['malformed']} quarantined (unreadable), "
        f"{stats.get('html_extracted', 0)} HTML pages reduced to their main text.",
        f"Time {t.get('total_s', 0):.1f} s ({t.get('docs_per_s') or 0:.0f} docs/s, {t.get('mb_per_s') or 0:.2f} MB/s) "
        f"with {t.get('workers', 1)} worker(s), executor {t.get('executor', 'local')}.",
        "",
        "![what each rule removed](report.png)",
        "",
        "| rule | documents | % of input | MB |",
        "|---|---:|---:|---:|",
    ]
    for rule, count in stats["rejected"].items():
        mb = stats["bytes"]["rejected"].get(rule, 0) / 1e6
        lines.append(f"| {rule} | {count} | {100 * count / n:.1f} | {mb:.2f} |")
    if stats["quarantined"]:
        lines += [
            "",
            "## Quarantined (see quarantine/*.jsonl for file and line)",
            "",
            "| problem | lines |",
            "|---|---:|",
        ]
        lines += [f"| {problem} | {count} |" for problem, count in stats["quarantined"].items()]
    if stats.get("dedup"):
        d = stats["dedup"]
        lines += [
            "",
            f"Deduplication: {d.get('exact_duplicates', 0)} exact duplicates; {d.get('near_candidate_pairs', 0)} LSH "
            f"candidate pairs, {d.get('near_verified_pairs', 0)} verified, {d.get('near_duplicates', 0)} near duplicates removed.",
        ]
    lines += ["", "## Examples per rule", ""]
    for rule, examples in stats.get("examples", {}).items():
        lines += [f"### {rule}", ""]
        for example in examples:
            lines.append(f"- `{example['id']}` — {example['reason']}  ")
            lines.append(f"  > {_snippet(example['text'])}")
        lines.append("")
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
