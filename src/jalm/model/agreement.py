"""How close an exported model's logits must be to the run's: float32 rounding at the logits' scale.

A re-saved model or a merged LoRA layer (W + s·B·A rounded once to float32) changes every product by
about one unit in the last place (ulp) of float32, 2**-23 relative; through the layers that stays a few
ulps of the largest logit. An absolute 1e-5 is 84 ulps at |logit| 1 but under one ulp at |logit| 100,
so a correct merge of a model with large logits failed it. The tolerance is therefore relative to the
logits' scale, with the old 1e-5 as its floor: ULPS ulps of max |logit|. A merge that lost or mis-scaled
the adapter changes logits by the adapter's effect (≥ 1e-3 on the tests' 4-step runs), far above it.
"""

from __future__ import annotations

FLOAT32_ULP = 2.0**-23  # float32's machine epsilon: the spacing of floats in [1, 2)
ULPS = 64  # headroom over the ≤ 8 ulps that correct merges measure in tests/test_export_safety.py
FLOOR = 1e-5


def logits_tolerance(reference) -> float:
    """The largest |difference| a correct export may show against `reference` (a tensor of logits)."""
    scale = float(reference.detach().abs().max())
    return max(FLOOR, ULPS * FLOAT32_ULP * scale)


def logits_difference(reference, got) -> tuple[float, float]:
    """(max |reference - got|, the tolerance for it)."""
    return float((reference.double() - got.double()).abs().max()), logits_tolerance(reference)
