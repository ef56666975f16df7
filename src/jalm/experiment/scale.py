"""Experiment sizes: how much data, which model, how many steps and seeds.

Every run is budgeted in optimizer steps, never in seconds, so a result depends only on the seeds and
the settings, not on how busy the machine was. `quick` is for tests (seconds); `default` is sized for
about 15 minutes per experiment on a free 2-core CPU; `full` is the same grid on the `tiny` preset for a
bigger machine or a GPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from jalm.errors import JalmError


@dataclass(frozen=True)
class Scale:
    name: str
    preset: str
    seq_len: int
    micro_batch_size: int
    steps: int  # optimizer steps per run (schedule, init, filtering)
    beta2_steps: int  # the β2 runs are logged every step, so they are shorter
    beta2_lr_factor: float  # β2 is tested at this multiple of the preset's peak LR ("a high learning rate")
    warmup_steps: int
    seeds: tuple[int, ...]
    filtering_seeds: tuple[int, ...]
    # Data: how many documents of each bundled corpus file, each cut to at most `doc_chars` characters.
    corpus_docs: int | None
    doc_chars: int | None
    vocab_size: int
    val_fraction: float
    eval_batches: int
    # Filtering: noise characters per clean character, dev documents scored, sampled continuations.
    noise_ratio: float
    dev_docs: int
    prompts: int
    samples_per_prompt: int
    new_tokens: int

    @property
    def tokens_per_step(self) -> int:
        return self.seq_len * self.micro_batch_size

    def with_overrides(self, **overrides) -> Scale:
        values = {k: v for k, v in overrides.items() if v is not None}
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise JalmError(f"unknown experiment settings {', '.join(unknown)}")
        return dataclasses.replace(self, **values)


SCALES: dict[str, Scale] = {
    "quick": Scale(
        name="quick",
        preset="test",
        seq_len=32,
        micro_batch_size=4,
        steps=12,
        beta2_steps=12,
        beta2_lr_factor=10.0,
        warmup_steps=3,
        seeds=(0, 1),
        filtering_seeds=(0,),
        corpus_docs=24,
        doc_chars=1500,
        vocab_size=3500,
        val_fraction=0.1,
        eval_batches=2,
        noise_ratio=1.0,
        dev_docs=2,
        prompts=2,
        samples_per_prompt=2,
        new_tokens=12,
    ),
    "default": Scale(
        name="default",
        preset="test",
        seq_len=128,
        micro_batch_size=16,
        steps=400,
        beta2_steps=300,
        beta2_lr_factor=10.0,
        warmup_steps=20,
        seeds=(0, 1, 2),
        filtering_seeds=(0, 1, 2),
        corpus_docs=None,
        doc_chars=None,
        vocab_size=6000,
        val_fraction=0.02,
        eval_batches=20,
        noise_ratio=1.0,
        dev_docs=40,
        prompts=16,
        samples_per_prompt=8,
        new_tokens=64,
    ),
}


# The same grid on the `tiny` preset, longer: what changes against `default`, nothing else.
SCALES["full"] = dataclasses.replace(
    SCALES["default"],
    name="full",
    preset="tiny",
    seq_len=256,
    steps=2000,
    beta2_steps=1000,
    warmup_steps=100,
    vocab_size=8000,
    eval_batches=40,
    dev_docs=101,
    new_tokens=96,
)


def get_scale(name: str, **overrides) -> Scale:
    if name not in SCALES:
        raise JalmError(f"unknown experiment size {name!r}; choose {', '.join(SCALES)}")
    return SCALES[name].with_overrides(**overrides)
