"""metrics.jsonl (one JSON object per logging step or event) and the loss-curve plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from jalm.io import write_atomic


class MetricsLog:
    """Append-only JSONL log. On resume, lines past the checkpoint's step are dropped (they will be redone).

    Every record also goes to the `trackers` (train/trackers.py); a tracker that can skip the steps it
    already has is first given the records kept from earlier processes, so it catches up.
    """

    def __init__(
        self,
        path: Path,
        enabled: bool = True,
        truncate_after_step: int | None = None,
        tensorboard_dir: Path | None = None,
        trackers: Sequence = (),
    ):
        self.path, self.enabled = Path(path), enabled
        self.trackers = list(trackers) if enabled else []
        kept: list[dict] = []
        if enabled and truncate_after_step is not None and self.path.exists():
            kept = [line for line in read_metrics(self.path) if line.get("step", 0) <= truncate_after_step]
            write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        if enabled and tensorboard_dir is not None:
            from jalm.train.trackers import TensorBoardTracker

            self.trackers.insert(0, TensorBoardTracker(tensorboard_dir, truncate_after_step))
        for tracker in self.trackers:
            tracker.catch_up(kept)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        for tracker in self.trackers:
            tracker.log(record)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()
        self.trackers = []


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_loss(metrics_path: Path, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r and "event" not in r]
    val = [(r["step"], r["val_loss"]) for r in records if r.get("val_loss") is not None]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    if train:
        ax.plot(*zip(*train), label="train loss")
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
