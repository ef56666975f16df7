"""Learning-rate schedules: linear warmup, then cosine to a floor, inverse square root, or constant."""

from __future__ import annotations

import math


def lr_at(
    step: int, peak: float, warmup: int, total: int, schedule: str = "cosine", min_ratio: float = 0.1
) -> float:
    """Learning rate for optimizer step `step` (0-based) of `total`."""
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    floor = peak * min_ratio
    if schedule == "constant":
        return peak
    if schedule == "inverse_sqrt":
        # Continuous with the warmup; never below the floor.
        return max(floor, peak * math.sqrt(max(warmup, 1) / (step + 1)))
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
