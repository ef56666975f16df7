"""HTML → main text (navigation, headers, footers, scripts and comments dropped), with one of two
extractors: resiliparse's main-content extractor (fast, C++), or trafilatura (slower). Both are
imported on first use only, run offline and are deterministic. benchmarks/html_extractors.py
measures them side by side (speed and main text recovered on hand-marked real pages).
"""

from __future__ import annotations

import re
from typing import Any

_LOOKS_LIKE_HTML = re.compile(
    r"^\s*(?:<\?xml[^>]*>\s*)?(?:<!DOCTYPE\s+html|<html\b|<head\b|<body\b)", re.IGNORECASE
)


def is_html(record: dict[str, Any], text: str, mode: str) -> bool:
    if mode == "never":
        return False
    if mode == "always":
        return True
    if str(record.get("kind", "")).lower() == "html":
        return True
    return bool(_LOOKS_LIKE_HTML.match(text[:2000]))


# "resiliparse-full": resiliparse without its main-content heuristic (every block but scripts, styles,
# nav, header, footer, aside), leaving menus and footers to the line rules: on help pages nobody tuned on
# it keeps far more prose (benchmarks/html_prose.py); not the default, since the sets the defaults were
# measured on have not been rerun with it.
EXTRACTORS = ("resiliparse", "resiliparse-full", "trafilatura")


def extract_main_text(html: str, include_tables: bool = True, extractor: str = "resiliparse") -> str | None:
    """The page's main content as plain text (paragraphs separated by newlines), or None."""
    if extractor == "resiliparse":
        return _resiliparse(html, include_tables)
    if extractor == "resiliparse-full":
        return _resiliparse(html, include_tables, main_content=False)
    if extractor == "trafilatura":
        return _trafilatura(html, include_tables)
    raise ValueError(f"unknown HTML extractor {extractor!r} (choose from {', '.join(EXTRACTORS)})")


def _resiliparse(html: str, include_tables: bool, main_content: bool = True) -> str | None:
    from resiliparse.extract.html2text import extract_plain_text

    text = extract_plain_text(
        html,
        preserve_formatting=True,  # block elements become lines: the line-level rules need them
        main_content=main_content,
        list_bullets=False,
        alt_texts=False,
        links=False,
        form_fields=False,
        noscript=False,
        comments=False,
        skip_elements=_SKIP_FULL + ([] if include_tables else ["table"])
        if not main_content
        else (None if include_tables else ["table"]),
    )
    return text or None


_SKIP_FULL = ["nav", "header", "footer", "aside", "script", "style", "noscript"]


def _trafilatura(html: str, include_tables: bool) -> str | None:
    import logging

    import trafilatura

    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)  # its warnings are about the page, not us
    return trafilatura.extract(
        html,
        include_comments=False,
        include_tables=include_tables,
        include_links=False,
        include_images=False,
        deduplicate=False,
        with_metadata=False,
        favor_recall=True,
    )
