"""Deduplication across every shard of a run, without one in-memory set.

Each shard job computes, for every document that passed the filters, a 64-bit hash of its
normalised text (exact duplicates) and a MinHash signature of its character n-grams, cut into LSH
bands; it writes them to per-shard key files. A second pass groups equal band keys across all
shards (a job per band or per group of bands, reading their columns of every shard's file), so shards can be
processed on different machines as long as the key files meet on shared storage. Candidate pairs
are verified on their signatures and joined with union-find; within each group the first document
(in shard order, then line order, so the choice does not depend on the number of workers) is kept,
and a later one is dropped only when it is like a document kept before it (keep_one_per_group), so
a chain of similar documents never takes a whole group of copies with it.

MinHash uses one permutation hashing with densification (Li, Owen & Zhang 2012; Shrivastava & Li
2014): one hash per n-gram, spread over `bands * rows` bins, so the cost is linear in the text
instead of text length × number of hash functions.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jalm.executors import Report, ignore_report
from jalm.io import atomic_path, write_atomic

_EMPTY = np.uint32(0xFFFFFFFF)
_BASE = np.uint64(1_000_003)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fast, well-spread 64-bit hash of each element (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def exact_hash(text: str, codes: np.ndarray | None = None) -> int:
    """64-bit hash of the text's code points (`codes`: its UTF-32 array, if already at hand).

    xxHash3 runs at memory speed (~0.3 ns per character here, against ~5 for BLAKE2b over UTF-8);
    without the xxhash package, BLAKE2b. Every worker of a run must use the same one."""
    buffer = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32) if codes is None else codes
    if _xxh3 is not None:
        return _xxh3(buffer)
    return int.from_bytes(hashlib.blake2b(buffer, digest_size=8).digest(), "little")


try:
    from xxhash import xxh3_64_intdigest as _xxh3
except ImportError:  # pragma: no cover - xxhash is a dependency; the fallback keeps runs working
    _xxh3 = None


def signature(shingles: np.ndarray, num_hashes: int, seed: int = 0) -> np.ndarray | None:
    """One-permutation MinHash signature (uint32 × num_hashes), or None for a text without n-grams."""
    if len(shingles) == 0:
        return None
    salt = np.uint64((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF)
    sig = np.full(num_hashes, _EMPTY, dtype=np.uint32)
    pow2 = num_hashes & (num_hashes - 1) == 0
    # In blocks that stay in the CPU cache, every step in place: mix64, then bin and minimum.
    for lo in range(0, len(shingles), _BLOCK):
        h = shingles[lo : lo + _BLOCK] ^ salt
        t = np.empty_like(h)
        for shift, multiplier in ((30, _MIX1), (27, _MIX2), (31, None)):
            np.right_shift(h, np.uint64(shift), out=t)
            h ^= t
            if multiplier is not None:
                h *= multiplier
        if pow2:
            np.bitwise_and(h, np.uint64(num_hashes - 1), out=t)  # the same as h % num_hashes
        else:
            np.remainder(h, np.uint64(num_hashes), out=t)
        bins = t.view(np.int64)
        np.minimum.at(sig, bins, _high_words(h))
    filled = None
    if (sig == _EMPTY).any():
        # Some bin may be empty (short texts): find which (a bin whose minimum really is
        # 0xFFFFFFFF is filled, not empty).
        filled = np.zeros(num_hashes, dtype=bool)
        if len(shingles) <= _BLOCK:
            filled[bins] = True
        else:
            for lo in range(0, len(shingles), _BLOCK):
                filled[(mix64(shingles[lo : lo + _BLOCK] ^ salt) % np.uint64(num_hashes)).astype(np.intp)] = (
                    True
                )
    if filled is not None and not filled.all():
        # Densification: an empty bin borrows the value of the next filled bin (circularly), salted
        # with the distance, so two similar texts still agree on it with probability ≈ Jaccard.
        full = np.flatnonzero(filled)
        empty = np.flatnonzero(~filled)
        pos = np.searchsorted(full, empty) % len(full)
        source = full[pos]
        distance = (source - empty) % num_hashes
        salted = mix64(
            sig[source].astype(np.uint64) + distance.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        )
        sig[empty] = (salted >> np.uint64(32)).astype(np.uint32)
    return sig


_BLOCK = 1 << 15
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _high_words(h: np.ndarray) -> np.ndarray:
    """h >> 32 as uint32, without a copy on little-endian machines."""
    if sys.byteorder == "little":
        return h.view(np.uint32)[1::2]
    return (h >> np.uint64(32)).astype(np.uint32)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per band: documents sharing any band key are candidate duplicates.
    `sig` may also be a (documents × hashes) matrix: then the result is (documents × bands)."""
    table = sig[..., : bands * rows].reshape(*sig.shape[:-1], bands, rows).astype(np.uint64)
    acc = np.arange(1, bands + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    acc = np.broadcast_to(acc, table.shape[:-1])
    for r in range(rows):
        acc = mix64(acc * _BASE + table[..., r])
    return acc


# ---- per-shard key files ---------------------------------------------------------------------


def write_keys(
    work: Path,
    name: str,
    ids: list[str],
    exact: list[int],
    sigs: list[np.ndarray | None],
    cfg: dict[str, Any],
) -> None:
    """Write the shard's key files: ids, exact hashes, band keys (bands × docs) and signatures."""
    bands, rows = cfg["bands"], cfg["rows"]
    num = bands * rows
    n = len(ids)
    sig_matrix = np.zeros((n, num), dtype=np.uint32)
    band_matrix = np.zeros((bands, n), dtype=np.uint64)
    has_sig = np.zeros(n, dtype=bool)
    for i, sig in enumerate(sigs):
        if sig is not None:
            sig_matrix[i] = sig
            has_sig[i] = True
    if has_sig.any():  # all documents at once: the same keys as band_keys of each signature
        band_matrix[:, has_sig] = band_keys(sig_matrix[has_sig], bands, rows).T
    keys = work / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    for suffix, array in (
        ("exact", np.asarray(exact, dtype=np.uint64)),
        ("bands", band_matrix),
        ("sigs", sig_matrix),
        ("has_sig", has_sig),
    ):
        with atomic_path(keys / f"{name}.{suffix}.npy") as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, array)
    write_atomic(keys / f"{name}.ids.json", json.dumps(ids, ensure_ascii=False))


def _load(work: Path, name: str, suffix: str) -> np.ndarray:
    return np.load(work / "keys" / f"{name}.{suffix}.npy", mmap_mode="r")


@dataclass(frozen=True)
class GroupJob:
    """A share of the grouping pass: `bands` (LSH band numbers and/or "exact") over the key files of
    every shard in `shards` ((index, name) pairs) under `work`."""

    work: Path
    shards: list[tuple[int, str]]
    bands: list[Any]


def group_bands(job: GroupJob, report: Report = ignore_report) -> list[dict[str, Any]]:
    """Group equal keys of each band in `job.bands`, opening each shard's key files once rather than
    once per band. Returns, per band, {"band", "pairs"}: candidate (child, parent) pairs of global ids
    (shard index << 32 | position), where parent sorts before child. (Nothing to report: grouping
    reads keys, not documents.)"""
    work = job.work
    bands = job.bands
    keys: dict[Any, list[np.ndarray]] = {band: [] for band in bands}
    gids: dict[Any, list[np.ndarray]] = {band: [] for band in bands}
    for index, name in job.shards:
        if "exact" in bands:
            column = np.asarray(_load(work, name, "exact"))
            keys["exact"].append(column)
            gids["exact"].append((np.int64(index) << np.int64(32)) | np.arange(len(column), dtype=np.int64))
        near = [band for band in bands if band != "exact"]
        if near:
            positions = np.flatnonzero(np.asarray(_load(work, name, "has_sig"))).astype(np.int64)
            matrix = _load(work, name, "bands")
            for band in near:
                keys[band].append(np.asarray(matrix[band])[positions])
                gids[band].append((np.int64(index) << np.int64(32)) | positions)
    return [_group(band, keys[band], gids[band]) for band in bands]


def _group(band: Any, keys: list[np.ndarray], gids: list[np.ndarray]) -> dict[str, Any]:
    key = np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64)
    gid = np.concatenate(gids) if gids else np.zeros(0, dtype=np.int64)
    if len(key) < 2:
        return {"band": band, "pairs": np.zeros((0, 2), dtype=np.int64)}
    order = np.lexsort((gid, key))
    key, gid = key[order], gid[order]
    new_group = np.r_[True, key[1:] != key[:-1]]
    group = np.cumsum(new_group) - 1
    first = gid[np.flatnonzero(new_group)][group]
    member = gid != first
    pairs = [np.stack([gid[member], first[member]], axis=1)]
    if band != "exact":
        # Also the previous member of the bucket, so a chain a~b~c is found even when a~c fails verification.
        previous = np.r_[gid[:1], gid[:-1]]
        chained = member & ~new_group & (previous != first)
        pairs.append(np.stack([gid[chained], previous[chained]], axis=1))
    return {"band": band, "pairs": np.concatenate(pairs)}


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while self.parent.get(x, x) != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # The smaller global id (earlier shard, earlier line) stays the root: that copy is kept.
            lo, hi = (ra, rb) if ra < rb else (rb, ra)
            self.parent[hi] = lo


def resolve(
    work: Path, shards: list[tuple[int, str]], results: list[dict[str, Any]], cfg: dict[str, Any]
) -> tuple[dict[str, dict[int, str]], dict[str, int]]:
    """Join candidate pairs into groups; return {shard name: {position: reason}} and counters."""
    names = dict(shards)
    exact_pairs = [r["pairs"] for r in results if r["band"] == "exact"]
    near_pairs = [r["pairs"] for r in results if r["band"] != "exact"]
    drops: dict[int, str] = {}
    ids_cache: dict[int, list[str]] = {}

    def doc_id(gid: int) -> str:
        shard = gid >> 32
        if shard not in ids_cache:
            ids_cache[shard] = json.loads(
                (work / "keys" / f"{names[shard]}.ids.json").read_text(encoding="utf-8")
            )
        return ids_cache[shard][gid & 0xFFFFFFFF]

    # Exact duplicates: every member of a group points at the group's first document.
    exact_root: dict[int, int] = {}
    for pairs in exact_pairs:
        for child, parent in pairs.tolist():
            exact_root[child] = parent
    for child, parent in exact_root.items():
        drops[child] = f"exact_duplicate: same normalised text as {doc_id(parent)}"
    counters = {
        "exact_duplicates": len(exact_root),
        "near_candidate_pairs": 0,
        "near_verified_pairs": 0,
        "near_duplicates": 0,
    }

    if near_pairs and cfg.get("near", True):
        pairs = np.concatenate(near_pairs)
        # Map both ends onto their exact-duplicate root and drop self-pairs and repeats.
        if exact_root:
            lookup = np.vectorize(lambda g: exact_root.get(g, g), otypes=[np.int64])
            pairs = lookup(pairs) if len(pairs) else pairs
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        pairs = np.unique(np.sort(pairs, axis=1)[:, ::-1], axis=0) if len(pairs) else pairs
        counters["near_candidate_pairs"] = int(len(pairs))
        if len(pairs):
            sigs = _gather_signatures(work, names, np.unique(pairs))
            a = np.stack([sigs[g] for g in pairs[:, 0].tolist()])
            b = np.stack([sigs[g] for g in pairs[:, 1].tolist()])
            estimate = (a == b).mean(axis=1)
            verified = pairs[estimate >= cfg["threshold"]]
            counters["near_verified_pairs"] = int(len(verified))
            for gid, (kept, jaccard) in keep_one_per_group(verified, sigs, cfg["threshold"]).items():
                drops[gid] = (
                    f"near_duplicate: of {doc_id(kept)} (MinHash Jaccard ≈ {jaccard:.2f}, threshold {cfg['threshold']})"
                )
                counters["near_duplicates"] += 1
    by_shard: dict[str, dict[int, str]] = {}
    for gid, reason in drops.items():
        by_shard.setdefault(names[gid >> 32], {})[gid & 0xFFFFFFFF] = reason
    return by_shard, counters


def keep_one_per_group(
    verified: np.ndarray, sigs: dict[int, np.ndarray], threshold: float
) -> dict[int, tuple[int, float]]:
    """Which documents to drop, each with the KEPT document it duplicates and their Jaccard estimate.

    Verified pairs join documents into groups (union-find); within a group, documents are taken in
    global-id order (the first copy in shard and line order) and one is dropped only when its
    signature matches a document already kept at `threshold` or more. Dropping every member but
    the root, as a bare union-find does, loses whole groups through chains: a ~ b and b ~ c put c
    with a even when c is not like a, so a group of copies of c could disappear behind an
    unrelated a. Here every dropped document has a kept one it really is like."""
    union = UnionFind()
    for child, parent in verified.tolist():
        union.union(child, parent)
    groups: dict[int, list[int]] = {}
    for gid in np.unique(verified).tolist():
        groups.setdefault(union.find(gid), []).append(gid)
    drops: dict[int, tuple[int, float]] = {}
    for members in groups.values():
        members.sort()
        kept_ids: list[int] = []
        kept_sigs = np.empty((len(members), len(sigs[members[0]])), dtype=np.uint32)
        for gid in members:
            if kept_ids:
                similarity = (kept_sigs[: len(kept_ids)] == sigs[gid]).mean(axis=1)
                best = int(similarity.argmax())
                if similarity[best] >= threshold:
                    drops[gid] = (kept_ids[best], float(similarity[best]))
                    continue
            kept_sigs[len(kept_ids)] = sigs[gid]
            kept_ids.append(gid)
    return drops


def _gather_signatures(work: Path, names: dict[int, str], gids: np.ndarray) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    shard_of = gids >> 32
    for shard in np.unique(shard_of).tolist():
        members = gids[shard_of == shard]
        rows = np.asarray(_load(work, names[shard], "sigs")[members & 0xFFFFFFFF])
        for gid, row in zip(members.tolist(), rows):
            out[gid] = row
    return out
