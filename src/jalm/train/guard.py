"""Loss-spike and NaN guard: decide, before the optimizer step, whether a step is safe to apply.

A spike is a loss above `factor` × the median of the recent losses (as PaLM watched for); a non-finite
loss or gradient norm is always caught. The caller skips the update or rolls back to the last good
checkpoint and moves past the offending data window. Every event is logged and counted.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field


@dataclass
class SpikeGuard:
    action: str = "skip"  # skip | rollback | off
    factor: float = 2.0
    window: int = 50
    min_history: int = 10
    recent: deque = field(default_factory=lambda: deque(maxlen=50))
    skipped: int = 0
    rollbacks: int = 0

    @classmethod
    def from_config(cls, cfg) -> SpikeGuard:
        return cls(
            cfg.spike_action, cfg.spike_factor, cfg.spike_window, recent=deque(maxlen=cfg.spike_window)
        )

    def median(self) -> float | None:
        return statistics.median(self.recent) if self.recent else None

    def check(self, step: int, loss: float, grad_norm: float) -> str:
        """'ok', or the action to take ('skip' / 'rollback') for a spike or a non-finite value."""
        if self.action == "off":
            self.recent.append(loss)
            return "ok"
        bad = not (math.isfinite(loss) and math.isfinite(grad_norm))
        if not bad and len(self.recent) >= self.min_history:
            bad = loss > self.factor * statistics.median(self.recent)
        if bad:
            self.skipped += 1
            return self.action
        self.recent.append(loss)
        return "ok"

    def rolled_back(self) -> None:
        self.rollbacks += 1

    def state(self) -> dict:
        return {"recent": list(self.recent), "skipped": self.skipped, "rollbacks": self.rollbacks}

    def load_state(self, state: dict) -> None:
        self.recent.extend(state.get("recent", []))
        self.skipped = state.get("skipped", 0)
        self.rollbacks = state.get("rollbacks", 0)
