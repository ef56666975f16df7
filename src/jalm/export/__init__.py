"""`jalm export`: a training checkpoint → a Hugging Face model directory that LINE's snippet loads.

The directory holds config.json (readable alike by transformers 4 and 5), model.safetensors, the
tokenizer (spiece.model + an exact tokenizer.json), generation defaults, `jalm.json` (provenance: preset,
steps, tokens, data) and training/ (metrics.jsonl, loss.png) for the model card.
"""

from jalm.export.to_hf import (
    export,
)

__all__ = [
    "export",
]
