"""Dedup keys on disk as sorted runs: what pass 1 writes per shard and what the later dedup steps read.

A shard job buffers the keys of at most `run_docs(budget)` documents, then writes them as one run:

    keys/NAME.rC.ekeys.npy   exact hashes, sorted (uint64)          keys/NAME.rC.egids.npy  their global ids
    keys/NAME.rC.bkeys.npy   LSH band keys, each band sorted (bands × m, only documents with a signature)
    keys/NAME.rC.bgids.npy   their global ids                       keys/NAME.rC.sigs.npy   signatures, in line order
    keys/NAME.rC.ids         the documents' ids (JSON strings, one a line), keys/NAME.rC.idx.npy their byte offsets

and, last, keys/NAME.json (the shard's manifest: documents, runs, documents per run). A global id is
shard index << 32 | position among the shard's survivors, so sorting by it is shard order, then line
order. Everything later reads these files memory-mapped: a range of sorted keys by binary search, a
signature or an id by position, so no step holds a whole shard, let alone the corpus.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from jalm.corpus.dedup import band_keys
from jalm.errors import JalmError
from jalm.io import atomic_path, write_atomic

DEFAULT_MEMORY = "2GB"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})
MASK = (1 << 32) - 1


def parse_bytes(text: str | int) -> int:
    """'2GB', '512MiB', '64kB' or a number of bytes → bytes."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in _UNITS:
        raise JalmError(f"memory budget: {text!r} is not a size such as 2GB, 512MB or 1GiB")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def budget_of(cfg: dict[str, Any]) -> int:
    return parse_bytes(cfg.get("memory", DEFAULT_MEMORY))


def bytes_per_doc(cfg: dict[str, Any]) -> int:
    """What a buffered document costs pass 1 (signature as a numpy array, keys, id, the sort's copies)."""
    num = cfg.get("bands", 16) * cfg.get("rows", 8) if cfg.get("near", True) else 0
    return 2 * 4 * num + 4 * 16 * (cfg.get("bands", 16) + 1) + 300


def run_docs(cfg: dict[str, Any]) -> int:
    """Documents per run: a quarter of the budget (the rest is the filters')."""
    return max(64, budget_of(cfg) // 4 // bytes_per_doc(cfg))


def _save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array)


class RunWriter:
    """Buffers one shard's keys and writes them as sorted runs of at most run_docs(cfg) documents."""

    def __init__(self, folder: Path, name: str, index: int, cfg: dict[str, Any]) -> None:
        self.folder, self.name, self.index, self.cfg = folder, name, index, cfg
        self.near = bool(cfg.get("near", True))
        self.bands, self.rows = cfg.get("bands", 16), cfg.get("rows", 8)
        self.num = self.bands * self.rows
        self.limit = run_docs(cfg)
        self.n = self.runs = 0
        self._reset()

    def _reset(self) -> None:
        self.ids: list[str] = []
        self.exact: list[int] = []
        self.sigs: list[np.ndarray | None] = []

    def add(self, doc_id: str, exact: int, sig: np.ndarray | None) -> None:
        self.ids.append(doc_id)
        self.exact.append(exact)
        self.sigs.append(sig)
        if len(self.ids) >= self.limit:
            self.flush()

    def flush(self) -> None:
        if not self.ids:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = self.folder / f"{self.name}.r{self.runs}"
        n = len(self.ids)
        gids = (np.int64(self.index) << np.int64(32)) | np.arange(self.n, self.n + n, dtype=np.int64)
        exact = np.asarray(self.exact, dtype=np.uint64)
        order = np.argsort(exact, kind="stable")  # stable: equal keys stay in line order
        _save(Path(f"{stem}.ekeys.npy"), exact[order])
        _save(Path(f"{stem}.egids.npy"), gids[order])
        if self.near:
            sig_matrix = np.zeros((n, self.num), dtype=np.uint32)
            has_sig = np.zeros(n, dtype=bool)
            for i, sig in enumerate(self.sigs):
                if sig is not None:
                    sig_matrix[i] = sig
                    has_sig[i] = True
            keys = band_keys(sig_matrix[has_sig], self.bands, self.rows).T  # bands × m
            order = np.argsort(keys, axis=1, kind="stable")
            _save(Path(f"{stem}.bkeys.npy"), np.take_along_axis(keys, order, axis=1))
            _save(Path(f"{stem}.bgids.npy"), gids[has_sig][order])
            _save(Path(f"{stem}.sigs.npy"), sig_matrix)
        lines = [json.dumps(doc_id, ensure_ascii=False).encode("utf-8") + b"\n" for doc_id in self.ids]
        offsets = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum([len(line) for line in lines], out=offsets[1:])
        write_atomic(Path(f"{stem}.ids"), b"".join(lines))
        _save(Path(f"{stem}.idx.npy"), offsets)
        self.n += n
        self.runs += 1
        self._reset()

    def close(self) -> None:
        """Write the last run, then the manifest (which says the shard's keys are complete)."""
        self.flush()
        self.folder.mkdir(parents=True, exist_ok=True)
        manifest = {"docs": self.n, "runs": self.runs, "run_docs": self.limit, "near": self.near}
        write_atomic(self.folder / f"{self.name}.json", json.dumps(manifest))


class Keys:
    """Read access to every shard's runs: manifests, sorted key ranges, signatures and ids by global id."""

    def __init__(self, folder: Path, shards: list[tuple[int, str]]) -> None:
        self.folder = folder
        self.names = dict(shards)
        self.manifest = {
            index: json.loads((folder / f"{name}.json").read_text(encoding="utf-8")) for index, name in shards
        }
        self._maps: dict[tuple[int, int, str], np.ndarray] = {}
        self._ids: dict[tuple[int, int], Any] = {}

    def docs(self) -> int:
        return sum(m["docs"] for m in self.manifest.values())

    def runs(self) -> list[tuple[int, int]]:
        return [(index, run) for index, m in self.manifest.items() for run in range(m["runs"])]

    def array(self, index: int, run: int, suffix: str) -> np.ndarray:
        key = (index, run, suffix)
        if key not in self._maps:
            path = self.folder / f"{self.names[index]}.r{run}.{suffix}.npy"
            self._maps[key] = np.load(path, mmap_mode="r")
        return self._maps[key]

    def key_range(self, band: Any, lo: int, hi: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Every (key, global id) of `band` ("exact" or a band number) with lo <= key < hi (None: no
        upper end), from every run, by binary search in each sorted run."""
        keys, gids = [], []
        for index, run in self.runs():
            # Each run mapped for this read only (as in signatures()): the pages a binary search
            # faults in, with the kernel's read-around, would otherwise stay resident, run after run.
            stem = self.folder / f"{self.names[index]}.r{run}"
            if band == "exact":
                k, g = (
                    np.load(f"{stem}.ekeys.npy", mmap_mode="r"),
                    np.load(f"{stem}.egids.npy", mmap_mode="r"),
                )
            else:
                k = np.load(f"{stem}.bkeys.npy", mmap_mode="r")[band]
                g = np.load(f"{stem}.bgids.npy", mmap_mode="r")[band]
            i0 = int(np.searchsorted(k, np.uint64(lo), "left"))
            i1 = len(k) if hi is None else int(np.searchsorted(k, np.uint64(hi), "left"))
            if i1 > i0:
                keys.append(np.array(k[i0:i1]))
                gids.append(np.array(g[i0:i1]))
            del k, g
        if not keys:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
        return np.concatenate(keys), np.concatenate(gids)

    def signatures(self, gids: np.ndarray) -> np.ndarray:
        """Signatures of `gids` (any order), as a (len × hashes) matrix."""
        out = None
        shard = gids >> 32
        position = gids & MASK
        for index in np.unique(shard).tolist():
            per_run = self.manifest[index]["run_docs"]
            rows = np.flatnonzero(shard == index)
            run_of = position[rows] // per_run
            for run in np.unique(run_of).tolist():
                sel = rows[run_of == run]
                # Mapped for this read only: a mapping kept open holds every page read through it in
                # the process's resident memory, which would grow to all signatures of the corpus.
                sigs = np.load(self.folder / f"{self.names[index]}.r{run}.sigs.npy", mmap_mode="r")
                if out is None:
                    out = np.empty((len(gids), sigs.shape[1]), dtype=np.uint32)
                out[sel] = sigs[position[sel] - run * per_run]
                del sigs
        return out if out is not None else np.zeros((0, 0), dtype=np.uint32)

    def doc_id(self, gid: int) -> str:
        index, position = gid >> 32, gid & MASK
        per_run = self.manifest[index]["run_docs"]
        run, row = divmod(position, per_run)
        if (index, run) not in self._ids:
            stem = self.folder / f"{self.names[index]}.r{run}"
            data = (
                np.memmap(f"{stem}.ids", dtype=np.uint8, mode="r")
                if Path(f"{stem}.ids").stat().st_size
                else b""
            )
            self._ids[(index, run)] = (data, self.array(index, run, "idx"))
        data, offsets = self._ids[(index, run)]
        return json.loads(bytes(data[int(offsets[row]) : int(offsets[row + 1])]))
