"""Packing: clean documents → one memory-mapped token stream per split, and the sampler that reads it.

Format of a packed directory (what `jalm pack` writes and `jalm train` reads):
  train.bin, val.bin   flat token ids (uint16 when the vocabulary fits, else uint32); each document's
                       tokens are followed by </s>, no <s> (as LINE's models were trained and are prompted)
  meta.json            dtype, vocab size, eos id, token/document counts, default sequence length
  tokenizer/           a copy of the tokenizer, so a packed directory is self-describing

A training sequence is a window of `seq_len + 1` tokens starting at a multiple of `seq_len`; windows
cross document boundaries (documents are separated by </s>), so no token is wasted on padding.
The split is by document (a hash of its text), never inside one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jalm.errors import JalmError
from jalm.io import atomic_path, write_atomic
from jalm.jsonl import expand_inputs, read_texts

if TYPE_CHECKING:
    import numpy as np

# numpy is imported where it is used: `jalm --help` imports this module for its subcommand, and
# numpy would be half of its start-up time.
META_FILE = "meta.json"


def is_validation(text: str, val_fraction: float) -> bool:
    """Deterministic, order-independent split by document content."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < val_fraction


def _batches(texts: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def pack(
    inputs: list[str | Path],
    tokenizer_dir: str | Path,
    out_dir: str | Path,
    val_fraction: float = 0.01,
    seq_len: int = 512,
    progress: bool = True,
) -> dict:
    """Tokenize documents into train/val token streams; returns (and writes) meta.json."""
    import numpy as np

    from jalm.tokenizer import load_sentencepiece

    files = expand_inputs(inputs)
    sp = load_sentencepiece(tokenizer_dir)
    vocab = sp.get_piece_size()
    dtype = np.uint16 if vocab <= 2**16 else np.uint32
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    # The token files get their names only once both are complete and hold enough tokens.
    with atomic_path(out / "train.bin") as train_tmp, atomic_path(out / "val.bin") as val_tmp:
        counts = _write_streams(
            files, sp, dtype, val_fraction, {"train": train_tmp, "val": val_tmp}, progress
        )
        if counts["train"][0] == 0:
            raise JalmError(f"{', '.join(map(str, files))}: no documents with text to pack")
        if counts["train"][1] < seq_len + 1:
            raise JalmError(
                f"{files[0]}: only {counts['train'][1]} training tokens, fewer than one sequence of {seq_len + 1}"
            )
    tok_out = out / "tokenizer"
    if tok_out.resolve() != Path(tokenizer_dir).resolve():
        shutil.rmtree(tok_out, ignore_errors=True)
        shutil.copytree(tokenizer_dir, tok_out)
    meta = {
        "dtype": np.dtype(dtype).name,
        "vocab_size": vocab,
        "eos_id": sp.eos_id(),
        "seq_len": seq_len,
        "val_fraction": val_fraction,
        "inputs": [str(f) for f in files],
        "seconds": round(time.perf_counter() - start, 2),
        **{
            f"{split}_{key}": counts[split][i]
            for split in counts
            for i, key in enumerate(("documents", "tokens", "chars"))
        },
    }
    write_atomic(out / META_FILE, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return meta


def _write_streams(
    files: list[Path], sp: Any, dtype: type, val_fraction: float, paths: dict[str, Path], progress: bool
) -> dict[str, list[int]]:
    """Append each document's ids and </s> to its split's file; return [documents, tokens, characters]
    per split."""
    import numpy as np

    from jalm.progress import progress_bar

    eos = sp.eos_id()
    counts = {split: [0, 0, 0] for split in paths}
    with ExitStack() as stack:
        handles = {split: stack.enter_context(open(path, "wb")) for split, path in paths.items()}
        bar = stack.enter_context(progress_bar(desc="pack", unit=" docs", disable=not progress))
        for batch in _batches(read_texts(files), 256):
            ids = sp.encode(batch, num_threads=0)
            for text, doc in zip(batch, ids):
                if not text:
                    continue
                split = "val" if is_validation(text, val_fraction) else "train"
                doc.append(eos)
                handles[split].write(np.asarray(doc, dtype=dtype).tobytes())
                c = counts[split]
                c[0], c[1], c[2] = c[0] + 1, c[1] + len(doc), c[2] + len(text)
            bar.update(len(batch))
            bar.set_postfix(tokens=counts["train"][1] + counts["val"][1])
    return counts


def read_meta(packed_dir: str | Path) -> dict:
    path = Path(packed_dir) / META_FILE
    if not path.exists():
        raise JalmError(f"{packed_dir}: not a packed directory (no {META_FILE}); run `jalm pack` first")
    return json.loads(path.read_text(encoding="utf-8"))


def load_tokens(packed_dir: str | Path, split: str = "train") -> np.memmap:
    import numpy as np

    meta = read_meta(packed_dir)
    path = Path(packed_dir) / f"{split}.bin"
    if not path.exists():
        raise JalmError(f"{path}: missing; rerun `jalm pack`")
    dtype = np.dtype(meta["dtype"])
    if path.stat().st_size == 0:  # numpy cannot map an empty file; an empty split is legal (tiny corpora)
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


@dataclass
class SequenceSampler:
    """Deterministic, resumable order over the windows of a token stream.

    Epoch e visits every window once in the order of a permutation seeded by (seed, e). `position`
    counts windows handed out so far (over all ranks); saving it in a checkpoint is enough to resume
    exactly. Rank r of R takes every R-th window of each global batch, so ranks read disjoint data.
    """

    num_windows: int
    seed: int = 0
    position: int = 0

    def _order(self, epoch: int) -> np.ndarray:
        import numpy as np

        return np.random.default_rng([self.seed, epoch]).permutation(self.num_windows)

    def take(self, count: int) -> np.ndarray:
        """The next `count` window indices (global, all ranks), advancing the position."""
        import numpy as np

        result = np.empty(count, dtype=np.int64)
        filled = 0
        while filled < count:
            epoch, offset = divmod(self.position, self.num_windows)
            order = self._order(epoch)
            n = min(count - filled, self.num_windows - offset)
            result[filled : filled + n] = order[offset : offset + n]
            filled += n
            self.position += n
        return result


def num_windows(tokens: np.ndarray, seq_len: int) -> int:
    return max(0, (len(tokens) - 1) // seq_len)


def get_windows(tokens: np.ndarray, indices: np.ndarray, seq_len: int) -> np.ndarray:
    """Stack windows of seq_len + 1 tokens (inputs and shifted targets) as int64."""
    import numpy as np

    return np.stack([tokens[i * seq_len : i * seq_len + seq_len + 1] for i in indices]).astype(np.int64)
