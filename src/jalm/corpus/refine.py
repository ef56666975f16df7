"""What happens to a document after the filters keep it, in this order:

1. decontamination (`[decontaminate] files`, `--decontaminate FILE...`): rejected, reason
   `decontaminated`, when it shares a long character n-gram with an evaluation set (decontaminate.py);
2. line cleaning (`[lines]`): boilerplate lines removed (lines.py); a document left shorter than the
   length filter's `min_chars` is rejected, reason `lines`;
3. PII masking (`[pii]`, `--pii mask|off`): e-mail addresses, phone numbers, IP addresses and card
   numbers replaced by placeholders (pii.py).

Decontamination comes first because it only rejects, and sees the text as the filters saw it. Line
cleaning and masking run after the filters, so the rules judge a document as it was found and the
tuned filter thresholds keep their meaning. Each step counts what it did into the shard's stats
(`refine`), which merge_refine adds up for stats.json and report_lines shows in report.md.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from jalm.corpus.features import Features
from jalm.errors import JalmError

N_LINE_EXAMPLES = 3  # documents per shard whose removed lines are shown in the report
_WINDOW_BEFORE, _WINDOW_AFTER = 2, 8  # lines around the first removed line in an example


def validate(settings: dict[str, Any], where: str) -> None:
    """One-line errors for the sections this module reads."""
    from jalm.corpus.lines import RULES
    from jalm.corpus.pii import check_kinds

    pii = settings.get("pii", {})
    if pii.get("mode", "mask") not in ("mask", "off"):
        raise JalmError(f"{where}: [pii] mode must be 'mask' or 'off', got {pii.get('mode')!r}")
    check_kinds(pii.get("kinds", []), where)
    unknown = [r for r in settings.get("lines", {}).get("rules", []) if r not in RULES]
    if unknown:
        raise JalmError(
            f"{where}: unknown line rule(s) {', '.join(map(repr, unknown))} (known: {', '.join(RULES)})"
        )
    for path in settings.get("decontaminate", {}).get("files", []):
        if not Path(path).exists():
            raise JalmError(f"{path}: no such evaluation file (given to decontaminate)")


class Refiner:
    """Runs the three steps on one document; set up once per shard from the run's settings."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.lines = dict(settings.get("lines", {}))
        self.pii = dict(settings.get("pii", {}))
        self.decontaminate = dict(settings.get("decontaminate", {}))
        length = settings.get("filters", {}).get("length", {})
        self.min_chars = length.get("min_chars", 0) if length.get("enabled", True) else 0
        self.index = None
        files = self.decontaminate.get("files") or []
        if files:
            from jalm.corpus.decontaminate import DEFAULT_N, cached_index

            self.index = cached_index(tuple(map(str, files)), int(self.decontaminate.get("ngram", DEFAULT_N)))

    def __call__(
        self, record: dict[str, Any], text: str, features: Features | None, stats: dict[str, Any]
    ) -> tuple[str | None, str, Features | None]:
        """(reason or None, the text as it will be written, its Features if the text is unchanged)."""
        refine = stats.setdefault("refine", {})
        seconds = stats["filter_seconds"]
        if self.index is not None:
            from jalm.corpus.decontaminate import reason

            t0 = time.perf_counter()
            found = self.index.match(features if features is not None else Features(text))
            seconds["decontaminate"] += time.perf_counter() - t0
            counts = refine.setdefault(
                "decontamination", {"checked": 0, "rejected": {}, "index": self.index.counts}
            )
            counts["checked"] += 1
            if found is not None:
                counts["rejected"][found[0]] = counts["rejected"].get(found[0], 0) + 1
                return reason(found, self.index.n), text, features
        if self.lines.get("enabled", True):
            from jalm.corpus.lines import clean_lines

            t0 = time.perf_counter()
            codes = features.codes if features is not None else None
            cleaned, counts, removed = clean_lines(text, self.lines, codes)
            seconds["lines"] += time.perf_counter() - t0
            if removed:
                _count_lines(refine, counts, removed, record, text, cleaned)
                text, features = cleaned, None
                left = sum(map(len, text.split())) if self.min_chars else 0
                if left < self.min_chars:
                    return (
                        f"lines: {left} chars left after removing {len(removed)} boilerplate lines < {self.min_chars}",
                        text,
                        None,
                    )
        if self.pii.get("mode", "mask") == "mask":
            from jalm.corpus.pii import DEFAULT_KINDS, mask_pii

            t0 = time.perf_counter()
            codes = features.codes if features is not None else None  # None: lines were removed
            masked, counts = mask_pii(text, self.pii.get("kinds", DEFAULT_KINDS), codes)
            seconds["pii"] += time.perf_counter() - t0
            if counts:
                pii = refine.setdefault("pii", {})
                for kind, count in counts.items():
                    entry = pii.setdefault(kind, {"documents": 0, "replaced": 0})
                    entry["documents"] += 1
                    entry["replaced"] += count
                text, features = masked, None
        return None, text, features


def _count_lines(
    refine: dict[str, Any],
    counts: dict[str, list[int]],
    removed: list[tuple[int, str, str]],
    record: dict[str, Any],
    before: str,
    after: str,
) -> None:
    table = refine.setdefault("lines", {})
    for rule, (n_lines, n_chars) in counts.items():
        entry = table.setdefault(rule, {"documents": 0, "lines": 0, "chars": 0})
        entry["documents"] += 1
        entry["lines"] += n_lines
        entry["chars"] += n_chars
    examples = refine.setdefault("line_examples", [])
    if len(examples) < N_LINE_EXAMPLES:
        lines = before.split("\n")
        first = removed[0][0]
        window = range(max(0, first - _WINDOW_BEFORE), min(len(lines), first + _WINDOW_AFTER))
        gone = {i for i, _, _ in removed}
        examples.append(
            {
                "id": str(record.get("id")),
                "removed": [[rule, line] for _, rule, line in removed[:12]],
                "before": "\n".join(lines[i] for i in window),
                "after": "\n".join(lines[i] for i in window if i not in gone),
            }
        )


def merge_refine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's `refine` stats from the shards' (sums; the index description of any shard)."""
    out: dict[str, Any] = {}
    for part in parts:
        for section in ("lines", "pii"):
            for key, entry in part.get(section, {}).items():
                total = out.setdefault(section, {}).setdefault(key, dict.fromkeys(entry, 0))
                for field, value in entry.items():
                    total[field] += value
        if "decontamination" in part:
            d = part["decontamination"]
            total = out.setdefault("decontamination", {"checked": 0, "rejected": {}, "index": d["index"]})
            total["checked"] += d["checked"]
            for name, count in d["rejected"].items():
                total["rejected"][name] = total["rejected"].get(name, 0) + count
        examples = out.setdefault("line_examples", [])
        examples.extend(part.get("line_examples", [])[: max(0, 2 * N_LINE_EXAMPLES - len(examples))])
    for section in ("lines", "pii"):
        if section in out:
            out[section] = dict(
                sorted(out[section].items(), key=lambda kv: -kv[1].get("chars", kv[1].get("replaced", 0)))
            )
    if not out.get("line_examples"):
        out.pop("line_examples", None)
    return out


def _quote(text: str, limit: int = 400) -> list[str]:
    text = text if len(text) <= limit else text[:limit] + "…"
    return ["    " + line.replace("<", "&lt;") for line in text.split("\n")]


def report_lines(stats: dict[str, Any]) -> list[str]:
    """The report.md section for line cleaning, PII masking and decontamination (empty if none ran)."""
    refine = stats.get("refine") or {}
    out: list[str] = []
    if refine.get("lines"):
        out += [
            "",
            "## Boilerplate lines removed from kept documents",
            "",
            "| line rule | documents | lines | characters |",
            "|---|---:|---:|---:|",
        ]
        for rule, e in refine["lines"].items():
            out.append(f"| {rule} | {e['documents']} | {e['lines']} | {e['chars']} |")
        for example in refine.get("line_examples", []):
            removed = "; ".join(
                f"{rule}: 「{re.sub(r'[|<]', ' ', line)[:60]}」" for rule, line in example["removed"][:6]
            )
            out += ["", f"`{example['id']}` — removed {removed}", "", "before:", ""]
            out += _quote(example["before"]) + ["", "after:", ""] + _quote(example["after"])
    if refine.get("pii"):
        out += ["", "## PII masked", "", "| kind | documents | replaced |", "|---|---:|---:|"]
        out += [f"| {kind} | {e['documents']} | {e['replaced']} |" for kind, e in refine["pii"].items()]
    if refine.get("decontamination"):
        d = refine["decontamination"]
        index = d["index"]
        files = ", ".join(
            f"{name} ({f['indexed']} strings indexed, {f['shorter_than_n']} shorter than n)"
            for name, f in index["files"].items()
        )
        rejected = sum(d["rejected"].values())
        out += [
            "",
            "## Decontamination",
            "",
            f"{d['checked']} documents checked against {index['ngrams']} {index['n']}-character n-grams of {files}: "
            f"{rejected} rejected ({', '.join(f'{k} {v}' for k, v in d['rejected'].items()) or 'none'}).",
        ]
    return out
