"""Out-of-core dedup (sorted runs, key-range parts, pair buckets, union-find over duplicates only) takes
exactly the decisions of the in-memory path it replaced (jalm.corpus.dedup_memory, kept as the
reference): the same documents dropped, each with the same reason, whatever the memory budget."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from jalm.corpus import CleanConfig, clean, dedup, dedup_pairs
from jalm.corpus.dedup_memory import reference_decisions
from jalm.corpus.dedup_runs import Keys, RunWriter, parse_bytes
from jalm.corpus.features import Features
from jalm.corpus.normalize import normalize_text
from jalm.errors import JalmError
from jalm.executors import Executor
from jalm.jsonl import read_records

ROOT = Path(__file__).resolve().parents[1]
CORPUS = sorted((ROOT / "data" / "corpus").glob("*.jsonl.zst"))
CFG = {"exact": True, "near": True, "ngram": 5, "bands": 16, "rows": 8, "threshold": 0.7, "seed": 0}


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    out = []
    for record in read_records([ROOT / "data" / "corpus" / "wiki_jaquad.jsonl.zst"]):
        out.extend(
            s.strip() + "。" for s in normalize_text(record["text"]).split("。") if 15 <= len(s.strip()) <= 80
        )
    return out


def generated(sentences: list[str], n: int, seed: int = 0) -> list[str]:
    """Short documents of 3-6 real sentences; about a tenth exact copies of an earlier one, a fifth near
    copies (one sentence swapped or a few characters changed), some chains of near copies of near
    copies, and a few texts too short to have a 5-gram (no signature)."""
    rng = random.Random(seed)
    docs: list[str] = []
    for _ in range(n):
        roll = rng.random()
        if docs and roll < 0.1:
            docs.append(rng.choice(docs))
        elif docs and roll < 0.3:
            parts = rng.choice(docs).split("。")
            if rng.random() < 0.5 and len(parts) > 2:
                parts[rng.randrange(len(parts) - 1)] = rng.choice(sentences).rstrip("。")
            else:
                chars = list("。".join(parts))
                for _ in range(rng.randrange(1, 4)):
                    chars[rng.randrange(len(chars))] = rng.choice("あいうえおカキクケコ")
                parts = "".join(chars).split("。")
            docs.append("。".join(parts))
        elif roll < 0.31:
            docs.append(rng.choice(["あ", "日本", "東京都"]))
        else:
            docs.append("".join(rng.choice(sentences) for _ in range(rng.randrange(3, 7))))
    return docs


def write_runs(work: Path, docs: list[str], n_shards: int, cfg: dict) -> list[tuple[int, str]]:
    """Pass 1's key writing (shardjob._DedupKeys) for `docs` spread over `n_shards` shards."""
    shards = [(i, f"s{i}") for i in range(n_shards)]
    writers = [RunWriter(work / "keys", name, index, cfg) for index, name in shards]
    for i, text in enumerate(docs):
        grams = Features(text).ngram_hashes(cfg["ngram"])
        sig = dedup.signature(grams, cfg["bands"] * cfg["rows"], cfg["seed"])
        writers[i % n_shards].add(f"doc-{i}", dedup.exact_hash(text), sig)
    for writer in writers:
        writer.close()
    return shards


def out_of_core(work: Path, shards: list[tuple[int, str]], cfg: dict, workers: int = 1) -> tuple[dict, dict]:
    """Steps 1-4 as pipeline._group_pass runs them; ({shard: {position: reason}}, counters)."""
    plan = dedup_pairs.make_plan(work, shards, cfg, workers)
    with Executor(workers) as runner:
        for step in ("exact", "near", "bucket"):
            runner.run(dedup_pairs.run_part, dedup_pairs.jobs(work, shards, plan, step))
    counters = dedup_pairs.resolve(work, shards, plan)
    decisions = {}
    for index, name in shards:
        drops = dict(dedup_pairs.ShardDrops(work, shards, index, plan).items())
        if drops:
            decisions[name] = drops
    return decisions, counters


@pytest.mark.parametrize("memory", ["2GB", "100kB"])
def test_same_decisions_as_in_memory_on_generated_copies(
    tmp_path: Path, sentences: list[str], memory: str
) -> None:
    docs = generated(sentences, 3000)
    cfg = {**CFG, "memory": memory}
    shards = write_runs(tmp_path, docs, 3, cfg)
    want, want_counters = reference_decisions(tmp_path, shards, cfg)
    have, have_counters = out_of_core(tmp_path, shards, cfg)
    assert have == want
    assert have_counters == want_counters
    # Not a vacuous comparison: both kinds of duplicate, and a near copy dropped under the chain guard
    # only when it is like the kept one.
    assert want_counters["exact_duplicates"] > 200 and want_counters["near_duplicates"] > 300
    plan = dedup_pairs.make_plan(tmp_path, shards, cfg, 1)
    runs = len(Keys(tmp_path / "keys", shards).runs())
    if memory == "100kB":  # the tiny budget cuts everything small: many runs, key ranges and buckets
        assert runs >= 30 and plan["parts"] >= 5 and plan["buckets"] >= 5
    else:
        assert runs == 3 and plan["parts"] == 1


def test_same_decisions_with_exact_or_near_only(tmp_path: Path, sentences: list[str]) -> None:
    docs = generated(sentences, 800, seed=1)
    for switch in ({"near": False}, {"exact": False}):
        cfg = {**CFG, "memory": "100kB", **switch}
        work = tmp_path / next(iter(switch))
        shards = write_runs(work, docs, 2, cfg)
        want, want_counters = reference_decisions(work, shards, cfg)
        have, have_counters = out_of_core(work, shards, cfg, workers=1)
        assert have == want and have_counters == want_counters and have


def test_union_find_joins_components() -> None:
    pairs = np.array([[5, 1], [9, 5], [30, 20], [40, 30], [7, 2]], dtype=np.int64)
    nodes, label = dedup_pairs.union_find(pairs)
    groups = {}
    for node, root in zip(nodes.tolist(), label.tolist()):
        groups.setdefault(root, []).append(node)
    assert sorted(groups.values()) == [[1, 5, 9], [2, 7], [20, 30, 40]]


def test_budget_is_a_size() -> None:
    assert parse_bytes("2GB") == 2 * 10**9 and parse_bytes("512MiB") == 512 * 2**20
    with pytest.raises(JalmError, match="not a size"):
        parse_bytes("lots")


def rejected(out: Path) -> list[tuple[str, str]]:
    return sorted((r["id"], r["reason"]) for r in read_records(sorted((out / "rejected").glob("*.jsonl*"))))


def test_clean_run_matches_in_memory_on_bundled_data(tmp_path: Path, sentences: list[str]) -> None:
    """`jalm clean` on the bundled corpus plus a shard of planted copies, with a budget small enough for
    many runs and parts and 2 workers: the documents it drops as duplicates, with their reasons, are the
    reference's; a default-budget run keeps and rejects the very same documents; intermediates go away
    unless kept."""
    planted = tmp_path / "planted.jsonl"
    records = list(read_records(CORPUS))
    rng = random.Random(3)
    with open(planted, "w", encoding="utf-8") as handle:
        for record in rng.sample(records, 60):
            text = record["text"]
            if rng.random() < 0.5:  # a near copy: a few characters changed
                chars = list(text)
                for _ in range(5):
                    chars[rng.randrange(len(chars))] = "ア"
                text = "".join(chars)
            handle.write(
                json.dumps({"id": "copy-" + str(record.get("id")), "text": text}, ensure_ascii=False) + "\n"
            )
    inputs = [*CORPUS, planted]
    config = CleanConfig.load(overrides={"dedup": {"memory": "60kB"}})
    clean(inputs, tmp_path / "tiny", config=config, workers=2, progress=False, keep_intermediate=True)
    work = tmp_path / "tiny" / ".work"
    shards = _shard_listing(work)
    want, _ = reference_decisions(work, shards, config.section("dedup"))
    ids = Keys(work / "keys", shards)
    want_rejected = sorted(
        (ids.doc_id(index << 32 | position), reason)
        for index, name in shards
        for position, reason in want.get(name, {}).items()
    )
    have = [
        (i, r) for i, r in rejected(tmp_path / "tiny") if r.startswith(("exact_duplicate", "near_duplicate"))
    ]
    assert have == want_rejected and len(have) >= 50
    assert len(ids.runs()) > len(shards)  # the budget forced several runs per shard
    clean(inputs, tmp_path / "default", workers=1, progress=False)
    assert rejected(tmp_path / "default") == rejected(tmp_path / "tiny")
    kept = [
        sorted(r["id"] for r in read_records(sorted((tmp_path / d / "kept").glob("*"))))
        for d in ("tiny", "default")
    ]
    assert kept[0] == kept[1]
    assert not (tmp_path / "default" / ".work" / "keys").exists()
    assert not (tmp_path / "default" / ".work" / "dedup").exists()


def _shard_listing(work: Path) -> list[tuple[int, str]]:
    plan = json.loads((work / "plan.json").read_text(encoding="utf-8"))
    return [(i, s["name"]) for i, s in enumerate(plan["shards"])]


def test_rerun_resumes_after_the_last_finished_part(tmp_path: Path, sentences: list[str]) -> None:
    """Parts with a marker are not redone; a part whose marker is missing (killed before it) is, and the
    decisions come out the same."""
    cfg = {**CFG, "memory": "100kB"}
    shards = write_runs(tmp_path, generated(sentences, 1500, seed=2), 2, cfg)
    first, counters = out_of_core(tmp_path, shards, cfg)
    markers = sorted((tmp_path / "dedup").glob("*/*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in markers}
    redo = [tmp_path / "dedup" / "near" / "b3.p1.json", tmp_path / "dedup" / "verified" / "k2.json"]
    for path in [*redo, tmp_path / "dedup" / "counters.json"]:
        path.unlink()
    again, counters_again = out_of_core(tmp_path, shards, cfg)
    assert again == first and counters_again == counters
    rewritten = {p for p in markers if p.exists() and p.stat().st_mtime_ns != stamps[p]}
    assert rewritten == set(redo)
