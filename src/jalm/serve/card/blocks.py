"""The card's building blocks: simple blocks (paragraph, table, code, image, list) grouped in sections, and
the formatting every section uses, so the page and the README say exactly the same things."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jalm.generate import PROMPT as PROMPT  # the card's prompt is the one `jalm generate` continues

UNKNOWN = "unknown"
DASH = "—"


@dataclass
class Para:
    text: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Code:
    lang: str
    text: str


@dataclass
class Image:
    src: str
    alt: str


@dataclass
class Bullets:
    items: list[str]


Block = Para | Table | Code | Image | Bullets


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    anchor: str = ""


def fmt_int(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else UNKNOWN


def fmt_params(value: int | None) -> str:
    return f"{value:,} ({short_params(value)})" if value else UNKNOWN


def short_params(value: int | None) -> str:
    """1,652,230,656 → '1.7B', as the seed's table writes it."""
    if not value:
        return DASH
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= size:
            return f"{value / size:.1f}{suffix}"
    return str(value)


def fmt_num(value: Any, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else DASH
