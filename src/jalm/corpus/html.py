"""HTML → main text with trafilatura (navigation, headers, footers, scripts and comments dropped).

trafilatura is imported on first use only; it runs offline (no downloads) and is deterministic.
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


def extract_main_text(html: str, include_tables: bool = True) -> str | None:
    """The page's main content as plain text (paragraphs separated by newlines), or None."""
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
