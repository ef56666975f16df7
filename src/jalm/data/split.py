"""The train/validation split: by document, decided by a hash of its text (order- and shard-independent)."""

from __future__ import annotations

import hashlib


def is_validation(text: str, val_fraction: float) -> bool:
    """Deterministic, order-independent split by document content."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < val_fraction
