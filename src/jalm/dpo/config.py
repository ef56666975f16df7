"""Preference-tuning settings: what `jalm dpo` adds to TrainConfig, and its defaults (no torch here, so
`jalm --help` stays fast)."""

from __future__ import annotations

from dataclasses import dataclass

from jalm.train.config import TrainConfig

KIND = "dpo"
LOSSES = ("dpo", "ipo", "simpo", "orpo")
REFERENCE_FREE = ("simpo", "orpo")
# Published defaults of each loss's strength (--beta), see jalm.dpo.losses for the formulas:
# DPO β 0.1 (Rafailov et al. 2023, TRL), IPO τ 0.1 (Azar et al. 2023, TRL's beta), SimPO β 2.0 with
# margin γ 0.5 (Meng et al. 2024; TRL's CPO defaults), ORPO λ 0.1 (Hong et al. 2024).
BETA = {"dpo": 0.1, "ipo": 0.1, "simpo": 2.0, "orpo": 0.1}
SIMPO_GAMMA = 0.5


@dataclass
class DpoOptions:
    """What preference tuning adds to the training settings (TrainConfig)."""

    model: str
    data: list[str]
    val_data: list[str] | None = None  # held-out pairs; default: a content-hash split of `data`
    val_fraction: float = 0.05
    loss: str = "dpo"
    beta: float | None = None  # None: the loss's published default (BETA)
    simpo_gamma: float = SIMPO_GAMMA
    chat_template: str | None = None  # default: the model's own (tokenizer_config.json), else LINE's
    epochs: int = 1
    lora_rank: int = 0
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: list[str] | None = None
    decontaminate: bool = True
    decontamination_n: int | None = None
    eval_dir: str | None = None

    @property
    def strength(self) -> float:
        return BETA[self.loss] if self.beta is None else self.beta


# DPO defaults: the DPO paper's and TRL's learning rate 5e-7 is for 7B models after SFT; jalm's
# models are small, so 5e-6 full / 5e-5 LoRA (stated in --help), 10 % warmup (the paper's 150 of ~1.5k
# steps), no weight decay, 1 epoch, seq_len 1024 per reply sequence. No compile: the loss
# records per-step rewards on the side.
DPO_DEFAULTS = {
    "seq_len": 1024,
    "micro_batch_size": 2,
    "grad_accum": 8,
    "lr": 5e-6,
    "min_lr_ratio": 0.0,
    "weight_decay": 0.0,
    "spike_factor": 3.0,
    "save_every": 200,
    "log_every": 10,
    "compile": False,
}
LORA_LR = 5e-5
WARMUP_FRACTION = 0.1


def dpo_config(lora: bool, **overrides) -> TrainConfig:
    values = {"preset": KIND, **DPO_DEFAULTS, "lr": LORA_LR if lora else DPO_DEFAULTS["lr"]}
    values.update({"max_steps": -1, "warmup_steps": -1})
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(values, "dpo settings")
