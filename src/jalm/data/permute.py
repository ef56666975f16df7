"""A seeded permutation of 0..n-1 computed arithmetically: position → element, with no table in memory.

A shuffled order of every training window used to be `rng.permutation(num_windows)`: 8 bytes per
window, recomputed each epoch (1.3 GB and seconds per rank for the 160M windows of 650 GB at 2048
tokens). Here the order is a Feistel network, a bijection on the integers of 2·h bits (the smallest
power of four ≥ n), made a bijection on 0..n-1 by cycle walking: an output ≥ n is fed through again
until it lands inside (fewer than 4 passes on average, as n > 4^h / 4). Any position of any epoch is
computed alone, in a few integer operations, so a sampler resumes from a counter and its memory does
not grow with the data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

ROUNDS = 6  # 4 rounds already make a balanced Feistel network pseudo-random (Luby–Rackoff); 2 more are cheap
_MASK64 = (1 << 64) - 1


def round_keys(*seed: int) -> list[int]:
    """The network's round keys for a seed (e.g. (seed, source, epoch)), from numpy's seeded generator."""
    import numpy as np

    keys = np.random.default_rng([*seed, 0x5EED]).integers(0, 2**63, size=ROUNDS, dtype=np.int64)
    return [int(k) for k in keys]


def permute(positions: np.ndarray, n: int, keys: list[int]) -> np.ndarray:
    """The elements at `positions` (int64, each in 0..n-1) of the permutation of 0..n-1 that `keys` pick."""
    import numpy as np

    positions = np.asarray(positions, dtype=np.uint64)
    if n <= 1:
        return np.zeros(positions.shape, dtype=np.int64)
    half = max(1, ((n - 1).bit_length() + 1) // 2)  # 2·half bits hold n - 1
    out = _feistel(positions, half, keys)
    outside = out >= n
    while outside.any():  # cycle walking: stays a bijection on 0..n-1
        out[outside] = _feistel(out[outside], half, keys)
        outside = out >= n
    return out.astype(np.int64)


def _feistel(x: np.ndarray, half: int, keys: list[int]) -> np.ndarray:
    import numpy as np

    mask = np.uint64((1 << half) - 1)
    left, right = x >> np.uint64(half), x & mask
    for key in keys:
        left, right = right, left ^ (_mix(right, key) & mask)
    return (left << np.uint64(half)) | right


def _mix(x: np.ndarray, key: int) -> np.ndarray:
    """splitmix64's finaliser of x + key: every output bit depends on every input bit."""
    import numpy as np

    z = x + np.uint64(key & _MASK64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))
