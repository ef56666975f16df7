"""SYNTHETIC noise for the clean-stage quality benchmark: hand-written templates, filled at random.

The generator lives in jalm.experiment.noise (`make_labelled_noise`, with the filtering experiment's
`make_noise` beside it: one home for both synthetic-noise generators); its section there says where
the categories come from and that none of it was used to set jalm's defaults. This module keeps the
benchmark's name for it:

`make_noise(clean_texts, seed)` returns records {"id", "text", "label": "noise", "category",
"synthetic": true}; near-duplicates copy the given clean texts with small edits.
"""

from __future__ import annotations

from jalm.experiment.noise import CATEGORIES, make_labelled_noise, near_duplicate

make_noise = make_labelled_noise

__all__ = ["CATEGORIES", "make_noise", "near_duplicate"]
