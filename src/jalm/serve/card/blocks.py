"""The card's building blocks: simple blocks (paragraph, table, code, image, list) grouped in sections, and
the formatting every section uses, so the page and the README say exactly the same things."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jalm.formatting import DASH as DASH
from jalm.formatting import format_params
from jalm.generate import PROMPT as PROMPT  # the card's prompt is the one `jalm generate` continues

UNKNOWN = "unknown"


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
    return f"{value:,} ({format_params(value)})" if value else UNKNOWN


def fmt_num(value: Any, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else DASH
