"""DIR/report.md and DIR/report.png: what each rule removed, how much, with examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jalm.io import atomic_path, write_atomic


def write_chart(path: Path, stats: dict[str, Any]) -> None:
    """Two bar charts, documents and MB removed per rule (largest first), drawn with Pillow: a few
    milliseconds, where importing matplotlib and laying out a figure took ~0.5 CPU-second."""
    from PIL import Image, ImageDraw

    rules = list(stats["rejected"])
    docs = [stats["rejected"][r] for r in rules]
    mb = [stats["bytes"]["rejected"].get(r, 0) / 1e6 for r in rules]
    font, small = _font(14), _font(12)
    row, top, bottom = 30, 56, 48
    width, height = 1100, top + bottom + row * max(len(rules), 1)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    kept = stats["kept"]
    title = (
        f"jalm clean: {stats['input']} docs in, {kept} kept, {stats['rejected_total']} rejected, "
        f"{stats['malformed']} quarantined"
    )
    draw.text((width // 2, 18), title, fill="black", font=font, anchor="mm")
    label_width = max([int(draw.textlength(r, font=small)) for r in rules] + [40]) + 16
    panel = (width - label_width - 40) // 2
    panels = (
        (label_width, docs, "documents removed", (192, 80, 77), "{:d}"),
        (label_width + panel + 30, mb, "MB removed", (79, 129, 189), "{:.2f}"),
    )
    for left, values, xlabel, color, fmt in panels:
        scale = (panel - 60) / max(max(values, default=0), 1e-9)
        draw.line([(left, top - 6), (left, height - bottom + 6)], fill=(90, 90, 90))
        for i, value in enumerate(values):
            y = top + i * row
            draw.rectangle([left, y + 5, left + max(int(value * scale), 1), y + row - 5], fill=color)
            label = fmt.format(value)
            draw.text(
                (left + int(value * scale) + 5, y + row // 2), label, fill="black", font=small, anchor="lm"
            )
        draw.text((left + panel // 2, height - bottom // 2), xlabel, fill="black", font=font, anchor="mm")
    for i, rule in enumerate(rules):
        draw.text((label_width - 8, top + i * row + row // 2), rule, fill="black", font=small, anchor="rm")
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow ≥ 10.1 with FreeType: a scalable font
    except TypeError:  # pragma: no cover - older Pillow: its bitmap font
        return ImageFont.load_default()


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
    if stats.get("non_documents"):
        lines += [
            "",
            f"## Web archive records that hold no document ({stats['records']} records in all)",
            "",
            "| record | count |",
            "|---|---:|",
        ]
        lines += [f"| {kind} | {count} |" for kind, count in stats["non_documents"].items()]
    if stats.get("dedup"):
        d = stats["dedup"]
        lines += [
            "",
            f"Deduplication: {d.get('exact_duplicates', 0)} exact duplicates; {d.get('near_candidate_pairs', 0)} LSH "
            f"candidate pairs, {d.get('near_verified_pairs', 0)} verified, {d.get('near_duplicates', 0)} near duplicates removed.",
        ]
    from jalm.corpus.refine import report_lines

    lines += report_lines(stats)
    lines += ["", "## Examples per rule", ""]
    for rule, examples in stats.get("examples", {}).items():
        lines += [f"### {rule}", ""]
        for example in examples:
            lines.append(f"- `{example['id']}` — {example['reason']}  ")
            lines.append(f"  > {_snippet(example['text'])}")
        lines.append("")
    write_atomic(out / "report.md", "\n".join(lines) + "\n")
