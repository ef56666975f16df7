"""Pretraining: the LINE recipe (small init, AdamW β2 0.95, warmup + cosine) on one CPU or many GPUs."""

from jalm.train.config import TrainConfig
from jalm.train.loop import train

__all__ = ["TrainConfig", "train"]
