"""The run-wide dedup steps, each a set of jobs with memory bounded by the budget, whatever the corpus size.

Between pass 1 (sorted runs of keys per shard, dedup_runs.py) and pass 3 (kept shards):

1. exact parts: the exact hashes are cut into key ranges; a job reads its range from every sorted run
   (binary search in memory-mapped files), sorts it and writes (duplicate, first copy) pairs sorted by
   duplicate: dedup/exact/pP.{child,root}.npy. The key space is cut evenly (keys are 64-bit hashes, so
   each range holds about the same share) into as many parts as the budget needs.
2. near parts: the same per (LSH band, key range); each bucket of equal keys gives (member, first) and
   (member, previous) candidate pairs; both ends are mapped to their exact-duplicate root, self-pairs
   dropped, and the pairs written in buckets by a hash of the later document: dedup/near/bB.pP.npy
   (the marker bB.pP.json says where each bucket starts).
3. pair buckets: a job per bucket loads its pairs (each candidate pair lies in exactly one bucket),
   removes repeats (a pair found in several bands), confirms each on the two signatures (estimated
   Jaccard >= threshold) and writes the confirmed ones: dedup/verified/kK.npy.
4. resolve (one job): union-find over the documents that have a confirmed near duplicate only, then
   keep_one_per_group in global-id order; writes per shard (position, kept document, matching hashes):
   dedup/drops/NAME.npy, and dedup/counters.json.

Every part writes a marker (its .json) last: a rerun redoes only the parts without one. Pass 3 reads a
shard's exact duplicates from step 1's files (a range of sorted ids) and its near duplicates from step 4,
and writes each dropped document's reason, naming the kept copy by id (read by position from the runs).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jalm.corpus.dedup import mix64
from jalm.corpus.dedup_runs import MASK, Keys, _save, budget_of
from jalm.executors import Report, ignore_report
from jalm.io import write_atomic

# Bytes a key-range part needs per (key, id) entry: the entries, the sort's permutation and copies,
# the candidate pairs (up to two per entry), their mapping and sort: measured ≈ 400 B/entry at 1 M docs.
PART_BYTES_PER_ENTRY = 448
# Bytes a pair bucket needs per candidate pair: the pairs, their sort, and verification batches.
BUCKET_BYTES_PER_PAIR = 96
_VERIFY_BATCH = 1 << 14  # pairs whose two signatures are compared at once (2 × 512 B each)
_SPACE = 1 << 64


@dataclass(frozen=True)
class Part:
    """One job of steps 1-3: `step` ("exact", "near" or "bucket"), its band and key range or bucket."""

    work: Path
    shards: list[tuple[int, str]]
    plan: dict[str, Any]
    step: str
    band: Any = None
    part: int = 0


def make_plan(work: Path, shards: list[tuple[int, str]], cfg: dict[str, Any], workers: int) -> dict[str, Any]:
    """How many key-range parts per band and pair buckets: enough for the budget, and at least enough
    jobs to keep `workers` busy. Written once (dedup/plan.json) so a resumed run cuts the same parts."""
    path = work / "dedup" / "plan.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    docs = Keys(work / "keys", shards).docs()
    budget = budget_of(cfg)
    bands: list[Any] = ["exact"] if cfg.get("exact", True) else []
    near = list(range(cfg["bands"])) if cfg.get("near", True) else []
    jobs_wanted = max(1, math.ceil(workers / max(1, len(bands) + len(near))))
    parts = max(jobs_wanted, math.ceil(docs * PART_BYTES_PER_ENTRY / budget))
    # Candidate pairs after the per-band repeats are removed: at most about 2 per document per band.
    buckets = max(workers, math.ceil(docs * 2 * BUCKET_BYTES_PER_PAIR / budget)) if near else 0
    plan = {
        "docs": docs,
        "budget": budget,
        "exact": bool(bands),
        "near": near,
        "parts": parts,
        "buckets": buckets,
        "threshold": cfg["threshold"],
        "hashes": cfg["bands"] * cfg["rows"],
    }
    write_atomic(path, json.dumps(plan))
    return plan


def jobs(work: Path, shards: list[tuple[int, str]], plan: dict[str, Any], step: str) -> list[Part]:
    """The parts of `step` that have no marker yet."""
    if step == "exact":
        todo = (
            [Part(work, shards, plan, "exact", "exact", p) for p in range(plan["parts"])]
            if plan["exact"]
            else []
        )
    elif step == "near":
        todo = [Part(work, shards, plan, "near", b, p) for b in plan["near"] for p in range(plan["parts"])]
    else:
        todo = [Part(work, shards, plan, "bucket", None, k) for k in range(plan["buckets"])]
    return [job for job in todo if not _marker(job).exists()]


def _marker(job: Part) -> Path:
    d = job.work / "dedup"
    if job.step == "exact":
        return d / "exact" / f"p{job.part}.json"
    if job.step == "near":
        return d / "near" / f"b{job.band}.p{job.part}.json"
    return d / "verified" / f"k{job.part}.json"


def _range(part: int, parts: int) -> tuple[int, int | None]:
    lo = part * _SPACE // parts
    return lo, (None if part == parts - 1 else (part + 1) * _SPACE // parts)


def run_part(job: Part, report: Report = ignore_report) -> dict[str, Any]:
    """Run one part of steps 1-3 (see the module's docstring); returns its marker's content."""
    if job.step == "exact":
        result = _exact_part(job)
    elif job.step == "near":
        result = _near_part(job)
    else:
        result = _bucket(job)
    write_atomic(_marker(job), json.dumps(result))
    return result


def group_pairs(key: np.ndarray, gid: np.ndarray, chain: bool) -> np.ndarray:
    """(member, first) pairs of every group of equal keys, and with `chain` (LSH bands) also (member,
    previous) where the previous member is not the first, so a chain a~b~c is found even when a~c fails
    verification. The same pairs as the in-memory path's grouping of a whole band."""
    if len(key) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    order = np.lexsort((gid, key))
    key, gid = key[order], gid[order]
    new_group = np.r_[True, key[1:] != key[:-1]]
    group = np.cumsum(new_group) - 1
    first = gid[np.flatnonzero(new_group)][group]
    member = gid != first
    pairs = [np.stack([gid[member], first[member]], axis=1)]
    if chain:
        previous = np.r_[gid[:1], gid[:-1]]
        chained = member & ~new_group & (previous != first)
        pairs.append(np.stack([gid[chained], previous[chained]], axis=1))
    return np.concatenate(pairs)


def _exact_part(job: Part) -> dict[str, Any]:
    keys = Keys(job.work / "keys", job.shards)
    lo, hi = _range(job.part, job.plan["parts"])
    key, gid = keys.key_range("exact", lo, hi)
    pairs = group_pairs(key, gid, chain=False)
    del key, gid
    pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
    folder = job.work / "dedup" / "exact"
    _save(folder / f"p{job.part}.child.npy", np.ascontiguousarray(pairs[:, 0]))
    _save(folder / f"p{job.part}.root.npy", np.ascontiguousarray(pairs[:, 1]))
    return {"duplicates": int(len(pairs))}


def _exact_maps(work: Path, plan: dict[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    if not plan["exact"]:
        return []
    folder = work / "dedup" / "exact"
    return [
        (
            np.load(folder / f"p{p}.child.npy", mmap_mode="r"),
            np.load(folder / f"p{p}.root.npy", mmap_mode="r"),
        )
        for p in range(plan["parts"])
    ]


def to_roots(gids: np.ndarray, maps: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Each global id replaced by the first copy of its exact-duplicate group (itself if it has none)."""
    out = gids.copy()
    for child, root in maps:
        if not len(child):
            continue
        at = np.searchsorted(child, gids)
        inside = at < len(child)
        hit = np.zeros(len(gids), dtype=bool)
        hit[inside] = child[at[inside]] == gids[inside]
        out[hit] = root[at[hit]]
    return out


def _unique_rows(pairs: np.ndarray) -> np.ndarray:
    if len(pairs) < 2:
        return pairs
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    pairs = pairs[order]
    keep = np.r_[True, (pairs[1:] != pairs[:-1]).any(axis=1)]
    return pairs[keep]


def _near_part(job: Part) -> dict[str, Any]:
    keys = Keys(job.work / "keys", job.shards)
    lo, hi = _range(job.part, job.plan["parts"])
    key, gid = keys.key_range(job.band, lo, hi)
    pairs = group_pairs(key, gid, chain=True)
    del key, gid
    if len(pairs):
        flat = to_roots(pairs.ravel(), _exact_maps(job.work, job.plan))
        pairs = flat.reshape(-1, 2)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        pairs = np.sort(pairs, axis=1)[:, ::-1]  # (later, earlier)
        pairs = _unique_rows(pairs)
    # One file per part, its pairs in bucket order; the marker holds where each bucket starts.
    n_buckets = job.plan["buckets"]
    bucket = (mix64(pairs[:, 0].astype(np.uint64)) % np.uint64(n_buckets)).astype(np.int64)
    order = np.argsort(bucket, kind="stable")
    _save(job.work / "dedup" / "near" / f"b{job.band}.p{job.part}.npy", np.ascontiguousarray(pairs[order]))
    offsets = np.searchsorted(bucket[order], np.arange(n_buckets + 1))
    return {"pairs": int(len(pairs)), "offsets": offsets.tolist()}


def _bucket(job: Part) -> dict[str, Any]:
    plan, k = job.plan, job.part
    folder = job.work / "dedup" / "near"
    loaded = []
    for b in plan["near"]:
        for p in range(plan["parts"]):
            offsets = json.loads((folder / f"b{b}.p{p}.json").read_text(encoding="utf-8"))["offsets"]
            part = np.load(folder / f"b{b}.p{p}.npy", mmap_mode="r")
            loaded.append(np.asarray(part[offsets[k] : offsets[k + 1]]))
    pairs = _unique_rows(np.concatenate(loaded)) if loaded else np.zeros((0, 2), dtype=np.int64)
    del loaded
    keys = Keys(job.work / "keys", job.shards)
    keep = np.zeros(len(pairs), dtype=bool)
    matches = np.zeros(len(pairs), dtype=np.int64)
    for lo in range(0, len(pairs), _VERIFY_BATCH):
        batch = pairs[lo : lo + _VERIFY_BATCH]
        a, b = keys.signatures(batch[:, 0]), keys.signatures(batch[:, 1])
        equal = (a == b).sum(axis=1)
        matches[lo : lo + len(batch)] = equal
        # The in-memory path's test, (a == b).mean() >= threshold, in the same float arithmetic.
        keep[lo : lo + len(batch)] = (equal / plan["hashes"]) >= plan["threshold"]
    _save(job.work / "dedup" / "verified" / f"k{k}.npy", np.ascontiguousarray(pairs[keep]))
    return {"candidates": int(len(pairs)), "verified": int(keep.sum())}


def union_find(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of the graph of `pairs` (global ids): (nodes sorted, label of each = index of
    its component's smallest node). Arrays over the documents that have a pair only."""
    nodes = np.unique(pairs)
    a, b = np.searchsorted(nodes, pairs[:, 0]), np.searchsorted(nodes, pairs[:, 1])
    label = np.arange(len(nodes))
    while True:
        la, lb = label[a], label[b]
        if (la == lb).all():
            return nodes, label
        low = np.minimum(la, lb)
        np.minimum.at(label, la, low)  # hook each root onto the smaller one
        np.minimum.at(label, lb, low)
        while True:  # pointer jumping until every node points at its root
            jumped = label[label]
            if (jumped == label).all():
                break
            label = jumped


def resolve_job(job: Part, report: Report = ignore_report) -> dict[str, int]:
    """Step 4 as a job (it runs in a worker, not in the driver)."""
    return resolve(job.work, job.shards, job.plan)


def resolve(work: Path, shards: list[tuple[int, str]], plan: dict[str, Any]) -> dict[str, int]:
    """Step 4: groups of near duplicates and the copy kept in each; writes dedup/drops/ and the counters."""
    done = work / "dedup" / "counters.json"
    if done.exists():
        return json.loads(done.read_text(encoding="utf-8"))
    d = work / "dedup"
    counters = {
        "exact_duplicates": sum(
            json.loads((d / "exact" / f"p{p}.json").read_text())["duplicates"] for p in range(plan["parts"])
        )
        if plan["exact"]
        else 0,
        "near_candidate_pairs": 0,
        "near_verified_pairs": 0,
        "near_duplicates": 0,
    }
    drops = np.zeros((0, 3), dtype=np.int64)
    if plan["near"]:
        for k in range(plan["buckets"]):
            marker = json.loads((d / "verified" / f"k{k}.json").read_text())
            counters["near_candidate_pairs"] += marker["candidates"]
            counters["near_verified_pairs"] += marker["verified"]
        verified = [np.load(d / "verified" / f"k{k}.npy") for k in range(plan["buckets"])]
        pairs = np.concatenate(verified) if verified else np.zeros((0, 2), dtype=np.int64)
        del verified
        if len(pairs):
            drops = keep_one_per_group(pairs, Keys(work / "keys", shards), plan["threshold"], plan["budget"])
        counters["near_duplicates"] = int(len(drops))
    drops = drops[np.argsort(drops[:, 0], kind="stable")]
    shard_of = drops[:, 0] >> 32
    for index, name in shards:
        rows = drops[shard_of == index]
        if len(rows):
            _save(d / "drops" / f"{name}.npy", np.stack([rows[:, 0] & MASK, rows[:, 1], rows[:, 2]], axis=1))
    write_atomic(done, json.dumps(counters))
    return counters


def keep_one_per_group(pairs: np.ndarray, keys: Keys, threshold: float, budget: int) -> np.ndarray:
    """(dropped, kept, matching hashes) rows: within each group of confirmed pairs, documents in global-id
    order, one dropped only when its signature matches a document already kept at `threshold` or more
    (the chain guard: every dropped document has a kept one it really is like). Signatures are read a
    batch of groups at a time."""
    nodes, label = union_find(pairs)
    order = np.lexsort((nodes, label))
    nodes, label = nodes[order], label[order]
    starts = np.flatnonzero(np.r_[True, label[1:] != label[:-1]])
    ends = np.r_[starts[1:], len(nodes)]
    out: list[tuple[int, int, int]] = []
    per_batch = max(1024, budget // 4 // 1024)
    i = 0
    while i < len(starts):
        j = i
        while j < len(starts) and ends[j] - starts[i] <= per_batch:
            j += 1
        j = max(j, i + 1)
        lo, hi = int(starts[i]), int(ends[j - 1])
        sigs = keys.signatures(nodes[lo:hi])
        for g in range(i, j):
            s, e = int(starts[g]) - lo, int(ends[g]) - lo
            _keep_group(nodes[lo + s : lo + e].tolist(), sigs[s:e], threshold, out)
        i = j
    return np.asarray(out, dtype=np.int64).reshape(-1, 3)


def _keep_group(
    members: list[int], sigs: np.ndarray, threshold: float, out: list[tuple[int, int, int]]
) -> None:
    num = sigs.shape[1]
    kept_rows: list[int] = []
    for row, gid in enumerate(members):
        if kept_rows:
            equal = (sigs[kept_rows] == sigs[row]).sum(axis=1)
            best = int(equal.argmax())
            if equal[best] / num >= threshold:
                out.append((gid, members[kept_rows[best]], int(equal[best])))
                continue
        kept_rows.append(row)


class ShardDrops:
    """A shard's duplicates for pass 3, as a read-only mapping position → reason, read from the files of
    steps 1 and 4 when first used (the job ships paths, not the drops)."""

    def __init__(self, work: Path, shards: list[tuple[int, str]], index: int, plan: dict[str, Any]) -> None:
        self.work, self.shards, self.index, self.plan = work, shards, index, plan
        self._loaded: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._keys: Keys | None = None

    def _load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._loaded is None:
            positions, kept, matches, kind = [], [], [], []
            lo, hi = self.index << 32, (self.index + 1) << 32
            for child, root in _exact_maps(self.work, self.plan):
                i0, i1 = np.searchsorted(child, [lo, hi])
                positions.append(np.asarray(child[i0:i1]) & MASK)
                kept.append(np.asarray(root[i0:i1]))
                matches.append(np.zeros(i1 - i0, dtype=np.int64))
                kind.append(np.zeros(i1 - i0, dtype=np.int8))
            path = self.work / "dedup" / "drops" / f"{dict(self.shards)[self.index]}.npy"
            if path.exists():
                near = np.load(path)
                positions.append(near[:, 0])
                kept.append(near[:, 1])
                matches.append(near[:, 2])
                kind.append(np.ones(len(near), dtype=np.int8))
            if positions:
                p, k, m, t = (np.concatenate(x) for x in (positions, kept, matches, kind))
                order = np.argsort(p, kind="stable")
                self._loaded = (p[order], k[order], m[order], t[order])
            else:
                empty = np.zeros(0, dtype=np.int64)
                self._loaded = (empty, empty, empty, empty.astype(np.int8))
        return self._loaded

    def __len__(self) -> int:
        return len(self._load()[0])

    def __bool__(self) -> bool:
        return len(self) > 0

    def __contains__(self, position: object) -> bool:
        p = self._load()[0]
        at = int(np.searchsorted(p, position))
        return at < len(p) and int(p[at]) == position

    def __getitem__(self, position: int) -> str:
        p, kept, matches, kind = self._load()
        at = int(np.searchsorted(p, position))
        if at >= len(p) or int(p[at]) != position:
            raise KeyError(position)
        if self._keys is None:
            self._keys = Keys(self.work / "keys", self.shards)
        other = self._keys.doc_id(int(kept[at]))
        if kind[at] == 0:
            return f"exact_duplicate: same normalised text as {other}"
        jaccard = int(matches[at]) / self.plan["hashes"]
        return f"near_duplicate: of {other} (MinHash Jaccard ≈ {jaccard:.2f}, threshold {self.plan['threshold']})"

    def items(self) -> Iterator[tuple[int, str]]:
        for position in self._load()[0].tolist():
            yield position, self[position]
