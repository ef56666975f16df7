"""Deduplication across every shard of a run, without one in-memory set.

Each shard job computes, for every document that passed the filters, a 64-bit hash of its
normalised text (exact duplicates) and a MinHash signature of its character n-grams, cut into LSH
bands (this module), and writes them as sorted runs (dedup_runs.py). The run-wide steps
(dedup_pairs.py) group equal keys by key range, confirm candidate pairs on their signatures and join
them with union-find over the duplicated documents only; within each group the first document (in
shard order, then line order, so the choice does not depend on the number of workers) is kept, and a
later one is dropped only when it is like a document kept before it, so a chain of similar documents
never takes a whole group of copies with it. Memory per process is bounded by a budget
([dedup] memory, `--memory-per-worker`), whatever the number of documents.

MinHash uses one permutation hashing with densification (Li, Owen & Zhang 2012; Shrivastava & Li
2014): one hash per n-gram, spread over `bands * rows` bins, so the cost is linear in the text
instead of text length × number of hash functions.
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np

_EMPTY = np.uint32(0xFFFFFFFF)
_BASE = np.uint64(1_000_003)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fast, well-spread 64-bit hash of each element (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def exact_hash(text: str, codes: np.ndarray | None = None) -> int:
    """64-bit hash of the text's code points (`codes`: its UTF-32 array, if already at hand).

    xxHash3 runs at memory speed (~0.3 ns per character here, against ~5 for BLAKE2b over UTF-8);
    without the xxhash package, BLAKE2b. Every worker of a run must use the same one."""
    buffer = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32) if codes is None else codes
    if _xxh3 is not None:
        return _xxh3(buffer)
    return int.from_bytes(hashlib.blake2b(buffer, digest_size=8).digest(), "little")


try:
    from xxhash import xxh3_64_intdigest as _xxh3
except ImportError:  # pragma: no cover - xxhash is a dependency; the fallback keeps runs working
    _xxh3 = None


def signature(shingles: np.ndarray, num_hashes: int, seed: int = 0) -> np.ndarray | None:
    """One-permutation MinHash signature (uint32 × num_hashes), or None for a text without n-grams."""
    if len(shingles) == 0:
        return None
    salt = np.uint64((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF)
    sig = np.full(num_hashes, _EMPTY, dtype=np.uint32)
    pow2 = num_hashes & (num_hashes - 1) == 0
    # In blocks that stay in the CPU cache, every step in place: mix64, then bin and minimum.
    for lo in range(0, len(shingles), _BLOCK):
        h = shingles[lo : lo + _BLOCK] ^ salt
        t = np.empty_like(h)
        for shift, multiplier in ((30, _MIX1), (27, _MIX2), (31, None)):
            np.right_shift(h, np.uint64(shift), out=t)
            h ^= t
            if multiplier is not None:
                h *= multiplier
        if pow2:
            np.bitwise_and(h, np.uint64(num_hashes - 1), out=t)  # the same as h % num_hashes
        else:
            np.remainder(h, np.uint64(num_hashes), out=t)
        bins = t.view(np.int64)
        np.minimum.at(sig, bins, _high_words(h))
    filled = None
    if (sig == _EMPTY).any():
        # Some bin may be empty (short texts): find which (a bin whose minimum really is
        # 0xFFFFFFFF is filled, not empty).
        filled = np.zeros(num_hashes, dtype=bool)
        if len(shingles) <= _BLOCK:
            filled[bins] = True
        else:
            for lo in range(0, len(shingles), _BLOCK):
                filled[(mix64(shingles[lo : lo + _BLOCK] ^ salt) % np.uint64(num_hashes)).astype(np.intp)] = (
                    True
                )
    if filled is not None and not filled.all():
        # Densification: an empty bin borrows the value of the next filled bin (circularly), salted
        # with the distance, so two similar texts still agree on it with probability ≈ Jaccard.
        full = np.flatnonzero(filled)
        empty = np.flatnonzero(~filled)
        pos = np.searchsorted(full, empty) % len(full)
        source = full[pos]
        distance = (source - empty) % num_hashes
        salted = mix64(
            sig[source].astype(np.uint64) + distance.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        )
        sig[empty] = (salted >> np.uint64(32)).astype(np.uint32)
    return sig


_BLOCK = 1 << 15
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _high_words(h: np.ndarray) -> np.ndarray:
    """h >> 32 as uint32, without a copy on little-endian machines."""
    if sys.byteorder == "little":
        return h.view(np.uint32)[1::2]
    return (h >> np.uint64(32)).astype(np.uint32)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per band: documents sharing any band key are candidate duplicates.
    `sig` may also be a (documents × hashes) matrix: then the result is (documents × bands)."""
    table = sig[..., : bands * rows].reshape(*sig.shape[:-1], bands, rows).astype(np.uint64)
    acc = np.arange(1, bands + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    acc = np.broadcast_to(acc, table.shape[:-1])
    for r in range(rows):
        acc = mix64(acc * _BASE + table[..., r])
    return acc
