"""The time budget: fix the number of steps from the measured speed so a run (and its schedule) ends on time.

Skip the first steps (compilation, kernel set-up), measure for `calibration_steps` steps or 15 % of the
budget, then fix max_steps; at half the budget re-estimate once from the steady speed since then. Rank 0
decides for everyone. The decision is part of the run: it is saved with the checkpoint (`state`) and a
resumed run keeps it (`load_state`) instead of measuring again.
"""

from __future__ import annotations

import time
from enum import IntEnum

from jalm.train import distributed as distrib

WARMUP_STEPS = 3  # steps not measured: compilation and first-touch allocations


class Phase(IntEnum):
    WARMING_UP = 0
    CALIBRATING = 1
    DECIDED = 2  # max_steps fixed; one re-estimate at half the budget still due
    FINAL = 3


class TimeBudget:
    def __init__(self, seconds: float | None, calibration_steps: int, start_step: int = 0):
        self.seconds = seconds
        self.calibration_steps = calibration_steps
        self.phase = Phase.WARMING_UP if seconds is not None else Phase.FINAL
        self.start_step = start_step
        self.started = time.perf_counter()
        self.mark_time, self.mark_step = self.started, start_step

    @property
    def active(self) -> bool:
        return self.phase < Phase.FINAL

    def update(self, step: int, max_steps: int) -> int:
        """Called after each applied step; returns the (possibly new) max_steps."""
        if not self.active or step - self.start_step < WARMUP_STEPS:
            return max_steps
        now = time.perf_counter()
        if self.phase == Phase.WARMING_UP:
            self.mark_time, self.mark_step, self.phase = now, step, Phase.CALIBRATING
            return max_steps
        measured = step - self.mark_step
        if self.phase == Phase.CALIBRATING:
            due = measured >= self.calibration_steps or (
                now - self.mark_time >= 0.15 * self.seconds and measured >= 2
            )
        else:
            due = now - self.started >= 0.5 * self.seconds and measured >= 2
        if not distrib.broadcast_object(due):
            return max_steps
        remaining = max(0.0, self.seconds - (now - self.started))
        decided = step + int(remaining / ((now - self.mark_time) / measured))
        max_steps = int(distrib.broadcast_object(max(decided, step + 1)))
        self.mark_time, self.mark_step, self.phase = now, step, Phase(self.phase + 1)
        return max_steps

    def state(self) -> dict:
        return {"phase": int(self.phase)}

    def load_state(self, state: dict) -> None:
        """A resumed run keeps the saved decision: the budget never measures again."""
        self.phase = Phase.FINAL
