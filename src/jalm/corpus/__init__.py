"""The clean stage: readers, normalisation, filters, deduplication, the pipeline and its executors.

from jalm.corpus import clean, CleanConfig
stats = clean(["raw.jsonl.zst"], "out/clean")
"""

from jalm.corpus.config import CleanConfig
from jalm.corpus.pipeline import clean

__all__ = ["CleanConfig", "clean"]
