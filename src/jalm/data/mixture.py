"""Training data as one or more packed datasets with weights: `--data NAME=DIR:WEIGHT ...`.

A source is a packed directory, a name (for metrics: tokens/NAME, epochs/NAME, val_loss/NAME) and a
weight (any positive number; the weights are normalised). `--data DIR` alone is a mixture of one.
A mixture file (`--data mix.json`) holds the same as a JSON object, NAME → {"path": DIR, "weight": W},
paths relative to the file. All sources must share one tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jalm.data.packing import read_meta
from jalm.data.tokens import TokenStream, open_split
from jalm.errors import JalmError


@dataclass(frozen=True)
class Source:
    name: str
    path: Path
    weight: float = 1.0


@dataclass
class Dataset:
    """A source opened: its meta.json and its two splits as token streams."""

    source: Source
    meta: dict
    train: TokenStream
    val: TokenStream


def parse_source(spec: str) -> Source:
    """NAME=DIR:WEIGHT, NAME=DIR, DIR:WEIGHT or DIR (the name defaults to the directory's name)."""
    name, _, rest = spec.rpartition("=") if "=" in spec else ("", "", spec)
    weight = 1.0
    head, colon, tail = rest.rpartition(":")
    if colon:
        try:
            weight = float(tail)
        except ValueError:
            head = rest  # a ":" that is part of the path
        rest = head
    if not rest:
        raise JalmError(f"--data {spec!r}: no directory (expected NAME=DIR:WEIGHT)")
    if not (weight > 0 and math.isfinite(weight)):
        raise JalmError(f"--data {spec!r}: the weight must be a positive number")
    return Source(name or Path(rest).name, Path(rest), weight)


def parse_sources(data: str | Path | Source | Sequence[str | Path | Source]) -> list[Source]:
    """The sources of `jalm train --data ...`: specs, a mixture file, or Source objects."""
    items = [data] if isinstance(data, (str, Path, Source)) else list(data)
    sources: list[Source] = []
    for item in items:
        if isinstance(item, Source):
            sources.append(item)
        elif Path(item).is_file() and str(item).endswith(".json"):
            sources.extend(_read_mixture_file(Path(item)))
        else:
            sources.append(parse_source(str(item)))
    if not sources:
        raise JalmError("--data: no packed directory given")
    names = [s.name for s in sources]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise JalmError(f"--data: source name {repeated[0]!r} given twice; name them NAME=DIR:WEIGHT")
    return sources


def _read_mixture_file(path: Path) -> list[Source]:
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise JalmError(f"{path}: not valid JSON ({error.msg})") from None
    if not isinstance(spec, dict) or not spec:
        raise JalmError(f'{path}: expected {{"NAME": {{"path": DIR, "weight": W}}, ...}}')
    sources = []
    for name, entry in spec.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise JalmError(f'{path}: source {name!r} needs a "path"')
        weight = entry.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or not (weight > 0 and math.isfinite(weight)):
            raise JalmError(f"{path}: source {name!r}: the weight must be a positive number")
        sources.append(Source(name, path.parent / entry["path"], float(weight)))
    return sources


def load_tokens(packed_dir: str | Path, split: str = "train") -> TokenStream:
    """One split of a packed directory (either format) as a memory-mapped token stream."""
    return open_split(packed_dir, read_meta(packed_dir), split)


def open_datasets(sources: list[Source]) -> list[Dataset]:
    """Open every source; refuse a mixture whose sources were packed with different tokenizers."""
    datasets = []
    for source in sources:
        if not source.path.is_dir():
            raise JalmError(f"{source.path}: no such directory; run `jalm pack` first")
        meta = read_meta(source.path)
        datasets.append(
            Dataset(
                source, meta, open_split(source.path, meta, "train"), open_split(source.path, meta, "val")
            )
        )
    first = datasets[0]
    for other in datasets[1:]:
        same = (other.meta["vocab_size"], other.meta.get("eos_id")) == (
            first.meta["vocab_size"],
            first.meta.get("eos_id"),
        ) and _tokenizer_id(other) == _tokenizer_id(first)
        if not same:
            raise JalmError(
                f"{other.source.path}: packed with another tokenizer than {first.source.path}; "
                "pack every source of a mixture with the same one"
            )
    return datasets


def _tokenizer_id(dataset: Dataset) -> str | None:
    """The packing tokenizer's SHA-256 (recorded by format 2; hashed from the copy for format 1)."""
    if "tokenizer_sha256" in dataset.meta:
        return dataset.meta["tokenizer_sha256"]
    model = dataset.source.path / "tokenizer" / "spiece.model"
    return hashlib.sha256(model.read_bytes()).hexdigest() if model.exists() else None
