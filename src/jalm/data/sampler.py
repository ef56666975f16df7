"""Deterministic, exactly resumable orders over training windows: one dataset, or a weighted mixture.

Both are functions of a single counter, `position` (windows handed out so far, over all ranks), which
a checkpoint saves: nothing else is needed to continue a run on exactly the windows it would have seen,
and nothing in memory grows with the number of windows (see permute.py).

One source: its j-th window is element j mod W of epoch j // W's permutation of its W windows.

A mixture of sources with weights w_s: draws are cut into blocks of `BLOCK` (65,536) draws; each block
holds source s exactly c_s times (c = BLOCK × w by largest remainders, so each share is within 1/65,536
of its weight), in an order shuffled per block from the seed. How many draws each source had before
any position is then arithmetic (full blocks × c, plus a count inside one block), so a source's own
counter, and through it its window, follows from the position alone. A source drawn more often than
it has windows starts a new epoch in a new order: a weight above the source's share of the tokens
means repeating it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jalm.data.permute import permute, round_keys
from jalm.errors import JalmError

if TYPE_CHECKING:
    import numpy as np

BLOCK = 1 << 16


def window_order(ordinals: np.ndarray, num_windows: int, seed: int, source: int = 0) -> np.ndarray:
    """The windows a source hands out as its `ordinals`-th draws: epoch by epoch, each a new permutation."""
    import numpy as np

    ordinals = np.asarray(ordinals, dtype=np.int64)
    epochs, offsets = np.divmod(ordinals, num_windows)
    out = np.empty_like(ordinals)
    for epoch in np.unique(epochs):
        chosen = epochs == epoch
        out[chosen] = permute(offsets[chosen], num_windows, round_keys(seed, source, int(epoch)))
    return out


@dataclass
class SequenceSampler:
    """The windows of one dataset: epoch e visits every window once, in an order seeded by (seed, e).
    Rank r of R takes every R-th window of each global batch, so ranks read disjoint data."""

    num_windows: int
    seed: int = 0
    position: int = 0

    def take(self, count: int) -> np.ndarray:
        """The next `count` window indices (global, all ranks), advancing the position."""
        import numpy as np

        if self.num_windows < 1:
            raise JalmError("no training windows to sample from")
        ordinals = np.arange(self.position, self.position + count, dtype=np.int64)
        self.position += count
        return window_order(ordinals, self.num_windows, self.seed)


def block_counts(weights: list[float], block: int = BLOCK) -> list[int]:
    """Draws per block for each weight (normalised), by largest remainders: they add up to `block`."""
    total = sum(weights)
    exact = [block * w / total for w in weights]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: block - sum(counts)]:
        counts[i] += 1
    return counts


@dataclass
class MixtureSampler:
    """(source, window) pairs drawn from several datasets in proportion to their weights."""

    windows: list[int]  # windows per source
    weights: list[float]  # any positive numbers; normalised here
    seed: int = 0
    position: int = 0
    block: int = BLOCK
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if len(self.windows) != len(self.weights) or not self.windows:
            raise JalmError("a mixture needs one weight per source")
        for i, (w, n) in enumerate(zip(self.weights, self.windows)):
            if not (w > 0 and math.isfinite(w)):
                raise JalmError(f"source {i}: weight must be a positive number, got {w}")
            if n < 1:
                raise JalmError(f"source {i}: no training windows to sample from")
        self.counts = block_counts(self.weights, self.block)
        if 0 in self.counts:
            i = self.counts.index(0)
            raise JalmError(
                f"source {i}: weight {self.weights[i]} is under 1/{self.block} of the total; it would never be drawn"
            )

    @property
    def shares(self) -> list[float]:
        """The exact share of draws each source gets (its weight, rounded to 1/block)."""
        return [c / self.block for c in self.counts]

    def _block_sources(self, index: int) -> np.ndarray:
        """Which source each draw of block `index` comes from (a seeded shuffle of the block's counts)."""
        import numpy as np

        if index not in self._cache:
            if len(self._cache) >= 2:  # a step touches at most two blocks
                self._cache.pop(next(iter(self._cache)))
            sources = np.repeat(np.arange(len(self.counts), dtype=np.int64), self.counts)
            if len(self.counts) > 1:
                sources = np.random.default_rng([self.seed, 0x4D1C, index]).permutation(sources)
            self._cache[index] = sources
        return self._cache[index]

    def drawn(self, position: int | None = None) -> np.ndarray:
        """How many draws each source had before `position` (default: the current one)."""
        import numpy as np

        position = self.position if position is None else position
        full, rest = divmod(position, self.block)
        counts = np.asarray(self.counts, dtype=np.int64) * full
        if rest:
            counts += np.bincount(self._block_sources(full)[:rest], minlength=len(self.counts))
        return counts

    def epochs(self, position: int | None = None) -> list[float]:
        """Passes over each source's windows so far (above 1: the source is being repeated)."""
        return [float(d) / n for d, n in zip(self.drawn(position), self.windows)]

    def take(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The next `count` draws as (source indices, window indices), advancing the position."""
        import numpy as np

        draws = np.arange(self.position, self.position + count, dtype=np.int64)
        blocks, offsets = np.divmod(draws, self.block)
        sources = np.empty(count, dtype=np.int64)
        for index in np.unique(blocks):
            chosen = blocks == index
            sources[chosen] = self._block_sources(int(index))[offsets[chosen]]
        before = self.drawn()
        windows = np.empty(count, dtype=np.int64)
        for s, n in enumerate(self.windows):
            chosen = sources == s
            ordinals = before[s] + np.arange(int(chosen.sum()), dtype=np.int64)
            windows[chosen] = window_order(ordinals, n, self.seed, s)
        self.position += count
        return sources, windows
