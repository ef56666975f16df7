"""Packing: clean documents → memory-mapped token shards, and the samplers that read them.

Format of a packed directory (what `jalm pack` writes and `jalm train` reads), format 2:
  shards/NAME.train.bin, shards/NAME.val.bin
                       one input shard's documents as flat token ids (uint16 when the vocabulary
                       fits, else uint32); each document's tokens are followed by </s>, no <s> (as
                       LINE's models were trained and are prompted)
  shards/NAME.*.idx    the index: where each document ends (uint64 token offsets)
  shards/NAME.json     the shard's marker: its source, settings and counts, written last
  meta.json            dtype, vocab size, eos id, summed counts, documents set aside (empty, too
                       long), and the shards in order
  tokenizer/           a copy of the tokenizer, so a packed directory is self-describing
Format 1 (one train.bin / val.bin, no shard list in meta.json) is still read as a dataset of one shard.

A split's token stream is its shards' files one after the other. A training sequence is a window of
`seq_len + 1` tokens starting at a multiple of `seq_len` of that stream; windows cross document (and
shard) boundaries (documents are separated by </s>), so no token is wasted on padding. The split is
by document (a hash of its text), never inside one.

Modules: split (train/validation by document), packjob (one shard's job), pack (planning, running,
resuming, meta.json), tokens (a split as one memory-mapped stream), permute and sampler (window
orders for one dataset or a weighted mixture), mixture (`--data NAME=DIR:WEIGHT`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jalm.data.split import is_validation

# numpy is imported where it is used: `jalm --help` imports this package for its subcommand, and numpy
# would be half of its start-up time. The names below load their module on first use.
_LAZY = {
    "pack": "jalm.data.packing",
    "read_meta": "jalm.data.packing",
    "META_FILE": "jalm.data.packing",
    "SequenceSampler": "jalm.data.sampler",
    "MixtureSampler": "jalm.data.sampler",
    "TokenStream": "jalm.data.tokens",
    "Source": "jalm.data.mixture",
    "parse_sources": "jalm.data.mixture",
    "load_tokens": "jalm.data.mixture",
}

if TYPE_CHECKING:
    import numpy as np

    from jalm.data.mixture import Source, load_tokens, parse_sources
    from jalm.data.packing import META_FILE, pack, read_meta
    from jalm.data.sampler import MixtureSampler, SequenceSampler
    from jalm.data.tokens import TokenStream

__all__ = [
    "META_FILE",
    "MixtureSampler",
    "SequenceSampler",
    "Source",
    "TokenStream",
    "get_windows",
    "is_validation",
    "load_tokens",
    "num_windows",
    "pack",
    "parse_sources",
    "read_meta",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jalm.data' has no attribute {name!r}")


def num_windows(tokens: np.ndarray | TokenStream, seq_len: int) -> int:
    return max(0, (len(tokens) - 1) // seq_len)


def get_windows(tokens: np.ndarray | TokenStream, indices: np.ndarray, seq_len: int) -> np.ndarray:
    """Stack windows of seq_len + 1 tokens (inputs and shifted targets) as int64."""
    import numpy as np

    return np.stack([tokens[i * seq_len : i * seq_len + seq_len + 1] for i in indices]).astype(np.int64)
