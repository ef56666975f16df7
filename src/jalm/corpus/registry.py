"""The filter registry: every filter registers itself here under its name, wherever it is defined.

It sits below every filter module (filters.py, langid.py, roff.py) so that a filter in a module of its own
needs no import of filters.py; `jalm.corpus.filters.FILTERS` is this dict, complete once filters.py is
imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jalm.corpus.features import Features

Filter = Callable[["Features", dict[str, Any]], "str | None"]
FILTERS: dict[str, Filter] = {}


def register(name: str) -> Callable[[Filter], Filter]:
    """Decorator: add a filter function to FILTERS under `name`."""

    def add(function: Filter) -> Filter:
        FILTERS[name] = function
        return function

    return add
