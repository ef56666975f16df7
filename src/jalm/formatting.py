"""Number formatting shared by the evaluation table and the model card (imports nothing heavy)."""

from __future__ import annotations

DASH = "—"  # a value that is missing, in a table cell


def format_params(params: int | None) -> str:
    """A parameter count as the seed's table writes it: 1,652,230,656 → '1.7B', 6,800,000 → '6.8M',
    356,096 → '356.1K', below a thousand the count itself; a missing count is a dash."""
    if not params:
        return DASH
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if params >= size:
            return f"{params / size:.1f}{suffix}"
    return str(params)
