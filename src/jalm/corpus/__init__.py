"""The clean stage: readers, normalisation, features and filters, deduplication, the pipeline and its
executors.

from jalm.corpus import clean, CleanConfig
stats = clean(["raw.jsonl.zst"], "out/clean")

The two names are imported on first use, so that `jalm --help` (which imports jalm.corpus.command)
does not load numpy and the filters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jalm.corpus.config import CleanConfig
    from jalm.corpus.pipeline import clean

__all__ = ["CleanConfig", "clean"]


def __getattr__(name: str) -> Any:
    if name == "clean":
        from jalm.corpus.pipeline import clean

        return clean
    if name == "CleanConfig":
        from jalm.corpus.config import CleanConfig

        return CleanConfig
    raise AttributeError(f"module 'jalm.corpus' has no attribute {name!r}")
