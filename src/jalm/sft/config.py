"""Instruction-tuning settings: what `jalm sft` adds to TrainConfig, and its defaults (no torch here, so
`jalm --help` stays fast)."""

from __future__ import annotations

from dataclasses import dataclass

from jalm.train.config import TrainConfig

KIND = "sft"


@dataclass
class SftOptions:
    """What instruction tuning adds to the training settings (TrainConfig)."""

    model: str
    data: list[str]
    val_data: list[str] | None = None  # held-out conversations; default: a content-hash split of `data`
    val_fraction: float = 0.05
    chat_template: str | None = None  # a Jinja file; default LINE's format (chat_template.py)
    train_on_everything: bool = False  # the ablation: loss on prompts too
    batching: str = "padded"
    epochs: int = 3
    lora_rank: int = 0  # 0: full fine-tuning
    lora_alpha: float = 16.0
    # 0: peft's LoRA dropout keeps a copy of each adapted layer's input for backward (+0.35 MiB per token on
    # `small`, enough to make LoRA need more memory than full fine-tuning at 2k tokens per step).
    lora_dropout: float = 0.0
    lora_targets: list[str] | None = None
    decontaminate: bool = True
    decontamination_n: int | None = None
    eval_dir: str | None = None  # where the evaluation sets are (default: the bundled ones)


# SFT defaults, stated in `jalm sft --help`: Alpaca's and TRL's usual full fine-tuning LR, QLoRA's LoRA LR,
# 3 % warmup then cosine to zero, no weight decay, the seed's β2 0.95, a guard that tolerates the
# larger step-to-step spread of masked losses.
SFT_DEFAULTS = {
    "seq_len": 2048,
    "micro_batch_size": 4,
    "grad_accum": 8,
    "lr": 2e-5,
    "min_lr_ratio": 0.0,
    "weight_decay": 0.0,
    "spike_factor": 3.0,
    "save_every": 200,
    "log_every": 10,
}
LORA_LR = 2e-4
WARMUP_FRACTION = 0.03


def sft_config(lora: bool, **overrides) -> TrainConfig:
    # max_steps and warmup_steps -1: derived from --epochs and the data once it is tokenized.
    values = {"preset": KIND, **SFT_DEFAULTS, "lr": LORA_LR if lora else SFT_DEFAULTS["lr"]}
    values.update({"max_steps": -1, "warmup_steps": -1})
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(values, "sft settings")
