"""Model presets (the published LINE shapes and small CPU ones), the seed's init, and building models."""

from jalm.model.build import build_model, count_parameters, hf_config
from jalm.model.presets import PRESETS, ModelPreset, get_preset

__all__ = [
    "PRESETS",
    "ModelPreset",
    "build_model",
    "count_parameters",
    "get_preset",
    "hf_config",
    "init_weights",
]


def __getattr__(name: str):
    # The init needs torch; `jalm --help` imports the presets and must not pay for it.
    if name == "init_weights":
        from jalm.model.init import init_weights

        return init_weights
    raise AttributeError(name)
