"""User stages: extra document processors that run after jalm's filters, e.g. a HojiChar profile.

A stage is a callable `text -> (reason or None, text)`. Stages come from the Python API
(`clean(..., stages=[...])`, objects that must pickle to reach worker processes) or from the
config (`stages = ["mypackage.profiles:make_compose"]`: a module attribute that is a HojiChar
`Compose`, or a function returning one, imported inside each worker).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from jalm.errors import JalmError

Stage = Callable[[str], tuple["str | None", str]]


class HojiCharStage:
    """Run a HojiChar `Compose` (or any HojiChar filter) as a stage of jalm's pipeline.

    A document HojiChar rejects is rejected with reason "hojichar: <FilterClass> ..."; a document it
    keeps continues with the text HojiChar produced (its filters may rewrite text).
    """

    name = "hojichar"

    def __init__(self, compose: Any) -> None:
        self.compose = compose

    def __call__(self, text: str) -> tuple[str | None, str]:
        from hojichar import Document

        document = self.compose.apply(Document(text))
        if document.is_rejected:
            return f"hojichar: rejected by {describe_rejection(document, self.compose)}", document.text
        return None, document.text


_HOJICHAR_BOOKKEEPING = ("name", "p", "skip_rejected", "use_batch", "batch_size", "random_state")


def describe_rejection(document: Any, compose: Any) -> str:
    """HojiChar's reject_reason is the rejecting filter's name and parameters: keep it short."""
    detail = getattr(document, "reject_reason", None)
    if not isinstance(detail, dict) or not detail:
        return type(compose).__name__
    name = str(detail.get("name", type(compose).__name__)).split("-", 1)[-1]
    params = [f"{k}={v}" for k, v in detail.items() if k not in _HOJICHAR_BOOKKEEPING][:4]
    return name + (f" ({', '.join(params)})" if params else "")


def _from_spec(spec: str) -> Stage:
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise JalmError(f"stage {spec!r}: expected 'module:attribute'")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise JalmError(f"stage {spec!r}: cannot import ({error})") from None
    if callable(target) and not hasattr(target, "apply"):
        target = target()
    return as_stage(target)


def as_stage(obj: Any) -> Stage:
    """HojiChar objects (anything with .apply(Document)) are wrapped; callables are used as they are."""
    if hasattr(obj, "apply"):
        return HojiCharStage(obj)
    if callable(obj):
        return obj
    raise JalmError(f"stage {obj!r}: not a HojiChar Compose/filter nor a callable text -> (reason, text)")


def load_stages(specs: list[str], objects: list[Any] | None = None) -> list[Stage]:
    return [_from_spec(spec) for spec in specs] + [as_stage(obj) for obj in objects or []]
