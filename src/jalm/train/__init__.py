"""Pretraining: the LINE recipe (small init, AdamW β2 0.95, warmup + cosine) on one CPU or many GPUs.

`train` is imported lazily so that `jalm --help` and the config dataclass don't pay for torch.
"""

from jalm.train.config import TrainConfig

__all__ = ["TrainConfig", "train"]


def __getattr__(name: str):
    if name == "train":
        from jalm.train.loop import train

        return train
    raise AttributeError(name)
