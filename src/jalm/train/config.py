"""Training configuration: one dataclass, defaults from the seed's recipe, overridable from the CLI or JSON."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from jalm.errors import JalmError


@dataclass
class TrainConfig:
    preset: str = "tiny"
    seq_len: int = 512
    micro_batch_size: int = 8  # sequences per process per forward/backward
    grad_accum: int = 1  # micro-batches per optimizer step
    # When set, grad_accum is derived so that every optimizer step sees this many tokens at any number of
    # processes (micro_batch_size × seq_len × processes × grad_accum); it must divide exactly.
    global_batch_tokens: int | None = None
    max_steps: int = 1000
    # When set, max_steps is decided after `calibration_steps` from the measured speed so the run
    # ends within this many seconds; the decision is saved, so a resumed run keeps the same schedule.
    time_budget_s: float | None = None
    calibration_steps: int = 50
    # The seed's recipe. 1.5e-4 is the 1.7B/3.6B peak; small models want more (the demo uses 2e-3).
    lr: float = 1.5e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    schedule: str = "cosine"  # cosine | inverse_sqrt | constant
    beta1: float = 0.9
    beta2: float = 0.95
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    z_loss: float = 0.0
    # Loss-spike / NaN guard: a step whose loss exceeds `spike_factor` × the median of the last
    # `spike_window` losses, or whose loss or gradient is not finite, is skipped or rolled back.
    spike_action: str = "skip"  # skip | rollback | off
    spike_factor: float = 2.0
    spike_window: int = 50
    init: str = "small_init"  # small_init (the seed's) | normal_0.02
    # Continued pretraining: start from the weights of a Hugging Face directory of the preset's shape
    # (GPT-2 or GPT-NeoX layout), e.g. a published LINE model on disk.
    init_from: str | None = None
    # With a tokenizer from `jalm tokenizer extend`: each new embedding row starts as the mean of the base
    # rows its text splits into ("mean", Swallow's), or keeps the seeded random init ("random").
    new_rows_init: str = "mean"
    tensorboard: bool = False  # the same as trackers="tensorboard"
    # Experiment trackers, comma-separated: tensorboard, wandb, mlflow (W&B and MLflow are extras).
    trackers: str = ""
    tracker_project: str | None = None  # W&B project / MLflow experiment (default: jalm)
    tracker_run_name: str | None = None  # default: the run directory's name
    mlflow_tracking_uri: str | None = None  # default: MLFLOW_TRACKING_URI, else a file store in OUT/mlflow
    seed: int = 0
    dtype: str = "auto"  # auto | float32 | bfloat16 (autocast)
    compile: bool = False
    activation_checkpointing: bool = False
    log_every: int = 10
    eval_every: int = 0  # 0: only at the end
    eval_batches: int = 20
    save_every: int = 200
    # Also save when this many minutes have passed since the last checkpoint (0: by steps only).
    checkpoint_minutes: float = 0.0
    # Write checkpoints in the background (DCP async_save: the state is staged in CPU memory, training
    # goes on while it is written; at most one write in flight; it appears once complete).
    async_checkpoint: bool = False
    keep_last: int = 2
    # Multi-process runs: how long a collective waits for a missing rank before the run fails (then
    # torchrun --max-restarts or a requeue resumes it from the last checkpoint); 0 keeps torch's default.
    dist_timeout_minutes: float = 0.0
    # --parallel hsdp: processes per sharding group (replicas across groups); 0: the GPUs of a node.
    shard_group_size: int = 0
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise JalmError(f"{source}: unknown training settings {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")), str(path))
        except FileNotFoundError:
            raise JalmError(f"{path}: no such file") from None
        except json.JSONDecodeError as error:
            raise JalmError(f"{path}: not valid JSON ({error.msg})") from None

    def validate(self) -> None:
        if self.schedule not in ("cosine", "inverse_sqrt", "constant"):
            raise JalmError(f"unknown schedule {self.schedule!r}; choose cosine, inverse_sqrt or constant")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise JalmError(f"unknown dtype {self.dtype!r}; choose auto, float32 or bfloat16")
        if self.new_rows_init not in ("mean", "random"):
            raise JalmError(f"unknown new_rows_init {self.new_rows_init!r}; choose mean or random")
        if self.spike_action not in ("skip", "rollback", "off"):
            raise JalmError(f"unknown spike_action {self.spike_action!r}; choose skip, rollback or off")
        from jalm.train.trackers import check_installed, tracker_names

        check_installed(tracker_names(self.trackers, self.tensorboard))
        for name in ("seq_len", "micro_batch_size", "grad_accum", "max_steps"):
            if getattr(self, name) < 1:
                raise JalmError(f"{name} must be at least 1, got {getattr(self, name)}")


def grad_accum_for(cfg: TrainConfig, world_size: int) -> int:
    """Micro-batches per optimizer step: `grad_accum`, or what `global_batch_tokens` asks for."""
    if cfg.global_batch_tokens is None:
        return cfg.grad_accum
    per_micro = cfg.micro_batch_size * cfg.seq_len * world_size
    if cfg.global_batch_tokens < per_micro or cfg.global_batch_tokens % per_micro:
        raise JalmError(
            f"global_batch_tokens {cfg.global_batch_tokens} is not a multiple of micro_batch_size × seq_len × "
            f"processes = {cfg.micro_batch_size} × {cfg.seq_len} × {world_size} = {per_micro}"
        )
    return cfg.global_batch_tokens // per_micro


# Per-preset starting points. 1.5e-4 is the seed's peak for 1.7B/3.6B (3e-4 diverged for them);
# small models tolerate and need a much higher peak.
PRESET_DEFAULTS: dict[str, dict] = {
    "1.7b": {
        "seq_len": 2048,
        "micro_batch_size": 4,
        "lr": 1.5e-4,
        "warmup_steps": 2000,
        "max_steps": 100_000,
        "activation_checkpointing": True,
        "save_every": 1000,
    },
    "3.6b": {
        "seq_len": 2048,
        "micro_batch_size": 2,
        "lr": 1.5e-4,
        "warmup_steps": 2000,
        "max_steps": 100_000,
        "activation_checkpointing": True,
        "save_every": 1000,
    },
    "small": {"seq_len": 1024, "micro_batch_size": 8, "lr": 6e-4, "warmup_steps": 500},
    "tiny": {"seq_len": 512, "micro_batch_size": 16, "lr": 2e-3, "warmup_steps": 50},
    "mini": {"seq_len": 512, "micro_batch_size": 8, "lr": 3e-3, "warmup_steps": 30},
    "test": {
        "seq_len": 64,
        "micro_batch_size": 4,
        "lr": 3e-3,
        "warmup_steps": 5,
        "max_steps": 20,
        "log_every": 1,
        "save_every": 10,
        "eval_batches": 2,
    },
}
# The GPT-2- and Llama-layout twins of the small presets train with the same settings.
PRESET_DEFAULTS["tiny-gpt2"] = PRESET_DEFAULTS["tiny-llama"] = PRESET_DEFAULTS["tiny"]
PRESET_DEFAULTS["test-gpt2"] = PRESET_DEFAULTS["test-llama"] = PRESET_DEFAULTS["test"]
PRESET_DEFAULTS["test-llama-gqa"] = PRESET_DEFAULTS["test"]
# LLM-jp-3's shapes: 4096 positions; LLM-jp trained at a peak of 3e-4 with 2000 warm-up steps (model card).
for _name in ("llm-jp-3-1.8b", "llm-jp-3-3.7b", "llm-jp-3-1.8b-gqa"):
    PRESET_DEFAULTS[_name] = {**PRESET_DEFAULTS["1.7b"], "seq_len": 4096, "micro_batch_size": 2, "lr": 3e-4}


# Continued pretraining of a model directory (`--init-from DIR`, no --preset), as Swallow did for Llama 2:
# a peak learning rate below the base's own (Swallow 1e-4 against Llama 2's 3e-4; 1e-4 is also at or
# below the peaks LINE and LLM-jp used, 1.5e-4 and 3e-4), a warm-up from zero, because the optimizer
# starts without the base's moments and a full step would knock the weights off their minimum, and
# cosine decay to a tenth. Replay of the base's languages is a data choice: --data ja=DIR:0.9 en=DIR:0.1.
CONTINUED_DEFAULTS = {"lr": 1e-4, "min_lr_ratio": 0.1, "warmup_steps": 1000, "seq_len": 2048}


def default_config(preset: str, **overrides) -> TrainConfig:
    """The training configuration for a preset, with explicit overrides applied on top."""
    defaults = PRESET_DEFAULTS.get(preset)
    if defaults is None and Path(preset, "config.json").is_file():
        from jalm.model import get_preset

        positions = get_preset(preset).max_positions
        defaults = {**CONTINUED_DEFAULTS, "seq_len": min(CONTINUED_DEFAULTS["seq_len"], positions)}
    values = {"preset": preset, **(defaults or {})}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(values, f"preset {preset}")
