"""Markdown for the reports: number formatting, tables, and the page every experiment writes."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jalm.experiment.analysis import spread
from jalm.io import write_atomic


@dataclass
class Finding:
    claim: str  # what the seed says
    measured: str  # what was measured, with the numbers
    status: str  # held | held on average only | did not hold | not observed


@dataclass
class Report:
    name: str
    title: str
    command: str
    setup: list[str]  # bullet lines: scale, data, settings
    findings: list[Finding]
    tables: list[tuple[str, str]]  # (heading, markdown table)
    plots: list[tuple[str, str]]  # (caption, file name in the output directory)
    notes: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)  # everything measured, for results.json

    def markdown(self) -> str:
        lines = [f"# {self.title}", "", f"Command: `{self.command}`", ""]
        lines += [f"- {line}" for line in self.setup] + [""]
        lines += [
            "## Claims",
            "",
            md_table(
                ["claim (the seed)", "measured here", "at this scale"],
                [[f.claim, f.measured, f"**{f.status}**"] for f in self.findings],
            ),
            "",
        ]
        for heading, table in self.tables:
            lines += [f"## {heading}", "", table, ""]
        for caption, name in self.plots:
            lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]
        if self.notes:
            lines += ["## Notes", ""] + [f"- {note}" for note in self.notes] + [""]
        return "\n".join(lines)

    def write(self, out: Path) -> Path:
        write_atomic(out / "report.md", self.markdown())
        data = {
            "name": self.name,
            "title": self.title,
            "command": self.command,
            "setup": self.setup,
            "findings": [asdict(f) for f in self.findings],
            "plots": [name for _, name in self.plots],
            **self.numbers,
        }
        write_atomic(
            out / "results.json", json.dumps(data, indent=2, ensure_ascii=False, default=_jsonable) + "\n"
        )
        return out / "report.md"


def _jsonable(value: Any) -> Any:
    return str(value)


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "NaN"
    return f"{value:.{digits}f}"


def fmt_spread(values: list[float], digits: int = 3) -> str:
    """'mean ± std (min–max)' over seeds; one seed is shown alone."""
    s = spread(values)
    if s["n"] == 1:
        return fmt(values[0], digits)
    return f"{fmt(s['mean'], digits)} ± {fmt(s['std'], digits)} ({fmt(s['min'], digits)}–{fmt(s['max'], digits)})"


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
