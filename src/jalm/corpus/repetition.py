"""How much of a document repeats itself: repeated lines or paragraphs, the most frequent character
n-gram, and the characters covered by n-grams that occur more than once (Gopher's repetition rules).

A share that only has to clear a limit is first bounded cheaply (a few rounds of bucket counting for
repeated n-grams, a small hash table for the most frequent one); only a document whose bound does
not clear the limit is measured exactly, so every decision is the one the exact share gives.
benchmarks/clean_equivalence.py checks that no bound is ever below its share.
"""

from __future__ import annotations

import numpy as np

from jalm.corpus.features import ratio

# Odd multipliers for the independent bucket functions of `repeated_bound` (splitmix64, wyhash).
_MULTIPLIERS = tuple(
    np.uint64(m) for m in (0xD6E8FEB86659FD93, 0xA0761D6478BD642F, 0xE7037ED1A0B428DB, 0xBF58476D1CE4E5B9)
)


def _top_bits(hashes: np.ndarray, multiplier: np.uint64, bits: int) -> np.ndarray:
    """Bucket of each hash in a table of 2**bits (Fibonacci hashing), as int64 indices."""
    return ((hashes * multiplier) >> np.uint64(64 - bits)).view(np.int64)


def repeated_bound(hashes: np.ndarray, n: int, total: int, limit: float = 0.0) -> float:
    """An upper bound on `duplicated_ngram_share`, cheap to compute.

    An n-gram that occurs twice shares its bucket with another n-gram in every hash table; one
    that occurs once does so only by chance. So the n-grams left after a few rounds of "keep those
    in a crowded bucket" (each round a new bucket function, ≥ 4 slots per n-gram) include every
    repeated one, and the share of positions they cover bounds the share repeated n-grams cover.
    On Japanese text the bound is within a few hundredths of the exact share, for a few array
    passes instead of sorting all n-grams. The coverage is measured after two rounds, and after
    four if it is still above `limit` (with few survivors, measuring costs less than a round)."""
    positions = None
    current = hashes
    for round_, multiplier in enumerate(_MULTIPLIERS):
        if len(current) < 2:
            return 0.0
        bits = max(4, (4 * len(current)).bit_length())
        if positions is None:  # first round: the hash's low bits (they depend on every character)
            bucket = (current & np.uint64((1 << bits) - 1)).view(np.int64)
        else:
            bucket = _top_bits(current, multiplier, bits)
        crowded = np.bincount(bucket, minlength=1 << bits)[bucket] > 1
        positions = crowded.nonzero()[0] if positions is None else positions[crowded]
        if len(positions) * n <= limit * total:
            return len(positions) * n / total  # each survivor covers at most n positions
        if round_ == 1 or round_ == len(_MULTIPLIERS) - 1:
            share = _covered(positions, n) / total
            if share <= limit or round_ == len(_MULTIPLIERS) - 1:
                return share
        current = hashes[positions]
    raise AssertionError("unreachable")


def _covered(starts: np.ndarray, n: int) -> int:
    """Positions covered by the n-grams starting at `starts` (sorted): the union of the intervals
    [start, start + n) is n for the last plus, for each other, the gap to the next, up to n."""
    if len(starts) == 0:
        return 0
    return int(np.minimum(np.diff(starts), n).sum()) + n


def repeated_share(pieces: list[str]) -> float:
    """Share of characters in pieces (lines, paragraphs) that repeat an earlier piece."""
    total = sum(map(len, pieces))
    return ratio(total - sum(map(len, set(pieces))), total)


def _buckets(hashes: np.ndarray, slots: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Each n-gram's bucket in a small hash table (≥ `slots` per n-gram) and the bucket counts.

    A bucket count bounds the count of every n-gram in it from above, so most documents are
    decided from the counts alone and only the few crowded buckets are resolved exactly (sorting
    all n-grams of every document was the clean stage's most expensive step)."""
    bits = max(10, int(len(hashes) * slots).bit_length())
    # Fibonacci hashing: the top bits of hash × golden ratio spread polynomial hashes evenly.
    bucket = ((hashes * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits)).astype(np.intp)
    size = 1 << bits
    return bucket, np.bincount(bucket, minlength=size)


def top_ngram_share(hashes: np.ndarray, n: int, total: int, limit: float | None = None) -> float:
    """Occurrences of the most frequent n-gram × n over all characters (overlaps count, as in Gopher).
    With `limit`, a document whose upper bound is within the limit returns that bound early."""
    if len(hashes) == 0:
        return 0.0
    bucket, counts = _buckets(hashes, slots=2)  # a few collisions barely move the maximum
    bound = int(counts.max()) * n / total
    if limit is not None and bound <= limit:
        return bound
    crowded = hashes[counts[bucket] >= max(2, int(counts.max() * 0.5))]
    ordered = np.sort(crowded)
    boundaries = np.flatnonzero(ordered[1:] != ordered[:-1])
    runs = np.diff(np.r_[-1, boundaries, len(ordered) - 1])
    return int(runs.max()) * n / total


def duplicated_ngram_share(hashes: np.ndarray, n: int, total: int) -> float:
    """Share of positions covered by at least one n-gram that occurs more than once (exact)."""
    covered = duplicated_ngram_mask(hashes, n, total)
    return 0.0 if covered is None else float(np.count_nonzero(covered)) / total


def duplicated_ngram_mask(hashes: np.ndarray, n: int, total: int) -> np.ndarray | None:
    """Which of the `total` positions at least one repeated n-gram covers (None: none does)."""
    if len(hashes) < 2:
        return None
    bucket, counts = _buckets(hashes)
    candidates = np.flatnonzero(counts[bucket] > 1)  # only these can repeat
    if len(candidates) == 0:
        return None
    values = hashes[candidates]
    order = np.argsort(values)
    ordered = values[order]
    same = ordered[1:] == ordered[:-1]
    repeated = np.zeros(len(values), dtype=bool)
    repeated[1:] |= same
    repeated[:-1] |= same
    starts = candidates[order][repeated]
    # Each repeated n-gram covers [start, start + n): +1 at the start, -1 after the end, running sum.
    delta = np.bincount(starts, minlength=total + n + 1) - np.bincount(starts + n, minlength=total + n + 1)
    return np.cumsum(delta[:total]) > 0
