"""One split of a packed directory as one token stream: its shard files, memory-mapped on demand.

The stream is the shards' token files one after the other (in meta.json's order). What stays in memory
is one offset per shard and at most `MAX_OPEN` open memory maps (the least recently used one is closed
first), so memory and open file descriptors stay flat however many shards a dataset has. A directory
packed before shards existed (format 1: one train.bin / val.bin) reads as a stream of one shard.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from jalm.errors import JalmError

if TYPE_CHECKING:
    import numpy as np

MAX_OPEN = 64  # memory maps kept open per stream (each holds a file descriptor)
SHARDS_DIR = "shards"


def shard_file(packed_dir: str | Path, name: str, split: str) -> Path:
    return Path(packed_dir) / SHARDS_DIR / f"{name}.{split}.bin"


class TokenStream:
    """A read-only, sliceable view of a split's tokens across all its shard files."""

    def __init__(self, files: list[tuple[Path, int]], dtype: str) -> None:
        import numpy as np

        self.dtype = np.dtype(dtype)
        self.files = [Path(path) for path, count in files if count > 0]  # numpy cannot map an empty file
        counts = [count for _, count in files if count > 0]
        self.offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=self.offsets[1:])
        self._open: OrderedDict[int, np.memmap] = OrderedDict()

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _map(self, shard: int) -> np.memmap:
        import numpy as np

        array = self._open.pop(shard, None)
        if array is None:
            path = self.files[shard]
            expected = int(self.offsets[shard + 1] - self.offsets[shard])
            if not path.exists():
                raise JalmError(f"{path}: missing; rerun `jalm pack`")
            if path.stat().st_size != expected * self.dtype.itemsize:
                raise JalmError(
                    f"{path}: {path.stat().st_size} bytes, meta.json says {expected} tokens; rerun `jalm pack`"
                )
            array = np.memmap(path, dtype=self.dtype, mode="r")
            if len(self._open) >= MAX_OPEN:
                self._open.popitem(last=False)
        self._open[shard] = array
        return array

    def __getitem__(self, key: slice) -> np.ndarray:
        """Tokens [start, stop) as an array, read across shard boundaries (a slice with no step)."""
        import numpy as np

        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("a TokenStream takes contiguous slices only")
        start, stop, _ = key.indices(len(self))
        if stop <= start:
            return np.zeros(0, dtype=self.dtype)
        shard = int(np.searchsorted(self.offsets, start, side="right")) - 1
        pieces = []
        while start < stop:
            begin, end = int(self.offsets[shard]), int(self.offsets[shard + 1])
            take = min(stop, end)
            pieces.append(self._map(shard)[start - begin : take - begin])
            start, shard = take, shard + 1
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def to_array(self) -> np.ndarray:
        """Every token in one array (for tests and small data; it reads the whole split)."""
        return self[0 : len(self)]


def open_split(packed_dir: str | Path, meta: dict, split: str) -> TokenStream:
    """The `split` ("train" or "val") of a packed directory of either format."""
    packed_dir = Path(packed_dir)
    if "shards" in meta:
        files = [
            (shard_file(packed_dir, s["name"], split), int(s[f"{split}_tokens"])) for s in meta["shards"]
        ]
        return TokenStream(files, meta["dtype"])
    path = packed_dir / f"{split}.bin"  # format 1
    if not path.exists():
        raise JalmError(f"{path}: missing; rerun `jalm pack`")
    import numpy as np

    count = path.stat().st_size // np.dtype(meta["dtype"]).itemsize
    return TokenStream([(path, count)], meta["dtype"])
