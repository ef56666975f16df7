"""The in-memory dedup of jalm up to 2026-12, kept as the REFERENCE the out-of-core path
(dedup_runs.py, dedup_pairs.py) is tested and benchmarked against: it must take exactly the same
decisions. Not used by `jalm clean`. It holds every key, signature and id of the run in one process
(about 1 kB per document), so it is for test and benchmark sizes only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from jalm.corpus.dedup_runs import Keys


def load_tables(work: Path, shards: list[tuple[int, str]]) -> dict[int, dict[str, Any]]:
    """Every shard's keys in line order, rebuilt from its sorted runs: ids, exact hashes, band keys
    (bands × docs), signatures and which documents have one."""
    keys = Keys(work / "keys", shards)
    tables = {}
    for index, name in shards:
        m = keys.manifest[index]
        n, per_run = m["docs"], m["run_docs"]
        ids: list[str] = []
        exact = np.zeros(n, dtype=np.uint64)
        sigs, bands, has_sig = None, None, np.zeros(n, dtype=bool)
        for run in range(m["runs"]):
            stem = keys.folder / f"{name}.r{run}"
            data = Path(f"{stem}.ids").read_bytes()
            ids.extend(json.loads(line) for line in data.splitlines())
            positions = keys.array(index, run, "egids") & 0xFFFFFFFF
            exact[positions] = keys.array(index, run, "ekeys")
            if m["near"]:
                run_sigs = np.asarray(keys.array(index, run, "sigs"))
                bkeys = keys.array(index, run, "bkeys")
                if sigs is None:
                    sigs = np.zeros((n, run_sigs.shape[1]), dtype=np.uint32)
                    bands = np.zeros((bkeys.shape[0], n), dtype=np.uint64)
                sigs[run * per_run : run * per_run + len(run_sigs)] = run_sigs
                bg = keys.array(index, run, "bgids") & 0xFFFFFFFF
                for b in range(bkeys.shape[0]):
                    bands[b, bg[b]] = bkeys[b]
                has_sig[bg[0] if len(bkeys) else []] = True
        tables[index] = {"ids": ids, "exact": exact, "sigs": sigs, "bands": bands, "has_sig": has_sig}
    return tables


def reference_decisions(
    work: Path, shards: list[tuple[int, str]], cfg: dict[str, Any]
) -> tuple[dict[str, dict[int, str]], dict[str, int]]:
    """The old path end to end on the run's key files: {shard name: {position: reason}} and counters."""
    tables = load_tables(work, shards)
    bands: list[Any] = ["exact"] if cfg.get("exact", True) else []
    if cfg.get("near", True):
        bands += list(range(cfg["bands"]))
    results = []
    for band in bands:
        keys, gids = [], []
        for index, _ in shards:
            t = tables[index]
            if band == "exact":
                keys.append(t["exact"])
                gids.append((np.int64(index) << np.int64(32)) | np.arange(len(t["exact"]), dtype=np.int64))
            elif t["bands"] is not None:
                positions = np.flatnonzero(t["has_sig"]).astype(np.int64)
                keys.append(t["bands"][band][positions])
                gids.append((np.int64(index) << np.int64(32)) | positions)
        results.append(_group(band, keys, gids))
    return resolve(tables, shards, results, cfg)


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
    tables: dict[int, dict[str, Any]],
    shards: list[tuple[int, str]],
    results: list[dict[str, Any]],
    cfg: dict[str, Any],
) -> tuple[dict[str, dict[int, str]], dict[str, int]]:
    """Join candidate pairs into groups; return {shard name: {position: reason}} and counters."""
    exact_pairs = [r["pairs"] for r in results if r["band"] == "exact"]
    near_pairs = [r["pairs"] for r in results if r["band"] != "exact"]
    drops: dict[int, str] = {}
    names = {index: name for index, name in shards}

    def doc_id(gid: int) -> str:
        return tables[gid >> 32]["ids"][gid & 0xFFFFFFFF]

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
            sigs = {g: tables[g >> 32]["sigs"][g & 0xFFFFFFFF] for g in np.unique(pairs).tolist()}
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
