"""`jalm clean` at growing document counts: peak memory of every process and CPU per document of each
pass, out-of-core dedup's decisions against the in-memory reference, and datatrove's MinHash beside it.

    PYTHONPATH=src nice -n 10 .venv/bin/python benchmarks/clean_scale.py --sizes 100000 300000 1000000 \\
        --memory 64MB --workers 2 --datatrove --out /tmp/clean_scale

Documents: short Japanese texts of 4-8 real sentences (../shared/data/corpus: Wikipedia and Aozora
Bunko, sentences of 15-80 characters), generated deterministically (seed 0); 10 % are exact copies of
an earlier document, 20 % near copies (one sentence replaced, or 1-5 characters changed), drawn from
the last 200,000 documents so copies cross shard files (50,000 documents each). Each document's
`family` (the fresh document it descends from) is the ground truth for precision and recall.

Per size, `jalm clean` runs in a child process with the default rules; a poller samples the resident
memory (RSS) and CPU time of the driver and every worker each 0.1 s; the passes' boundaries are the
modification times of their completion markers (kept with --keep-intermediate). Then the in-memory
reference (jalm.corpus.dedup_memory) decides on the same key files, and the two decisions are
compared as SHA-256 of the sorted kept ids and of the sorted (dropped id, reason) pairs.

--datatrove: on the largest size, jalm with every filter off (read, normalise, dedup, write: what
datatrove's MinHash pipeline does) against datatrove's 4 MinHash stages with the same 16 bands × 8
rows, run by its LocalPipelineExecutor with the same workers. datatrove's Japanese word tokenizer needs
spaCy + SudachiPy; it is given character 5-grams instead (the same shingles as jalm), through its own
text simplification and n-gram hash. Precision and recall against exact Jaccard of character 5-grams
(>= 0.7): recall on a sample of planted (copy, source) pairs whose Jaccard is >= 0.7 (found when not
both are kept); precision on a sample of each tool's dropped documents (right when a kept document of
its family has Jaccard >= 0.7 with it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data (next to the clone), or JALM_SHARED_DATA
DATA = Path(os.environ.get("JALM_SHARED_DATA", ROOT.parent / "shared" / "data")) / "corpus"
PER_FILE = 50_000
WINDOW = 200_000


def sentences() -> list[str]:
    out = []
    for name in ("wiki_jaquad.jsonl", "aozora.jsonl"):
        with open(DATA / name, encoding="utf-8") as handle:
            for line in handle:
                for s in json.loads(line)["text"].replace("\n", "").split("。"):
                    s = s.strip()
                    if 15 <= len(s) <= 80:
                        out.append(s + "。")
    return out


def generate(n: int, folder: Path, seed: int = 0) -> None:
    """Write n documents as folder/part-NNNNN.jsonl and folder/truth.json (family and source per doc)."""
    if (folder / "truth.json").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    pool = sentences()
    rng = random.Random(seed)
    recent: list[tuple[int, str]] = []
    family, source = [], []
    handle = None
    for i in range(n):
        if i % PER_FILE == 0:
            if handle:
                handle.close()
            handle = open(folder / f"part-{i // PER_FILE:05d}.jsonl", "w", encoding="utf-8")
        roll = rng.random()
        if recent and roll < 0.3:
            j, text = recent[rng.randrange(len(recent))]
            if roll >= 0.1:  # a near copy
                parts = text.split("。")
                if rng.random() < 0.5:
                    parts[rng.randrange(len(parts) - 1)] = rng.choice(pool)[:-1]
                    text = "。".join(parts)
                else:
                    chars = list(text)
                    for _ in range(rng.randrange(1, 6)):
                        chars[rng.randrange(len(chars))] = rng.choice("あいうえおカキクケコ")
                    text = "".join(chars)
            family.append(family[j])
            source.append(j)
        else:
            text = "".join(rng.choice(pool) for _ in range(rng.randrange(4, 9)))
            family.append(i)
            source.append(-1)
        recent.append((i, text))
        if len(recent) > WINDOW:
            recent[rng.randrange(WINDOW)] = recent.pop()
        handle.write(json.dumps({"id": f"d{i}", "text": text}, ensure_ascii=False) + "\n")
    handle.close()
    (folder / "truth.json").write_text(json.dumps({"family": family, "source": source}))


# ---- measuring a run ---------------------------------------------------------------------------


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[list[tuple], float, float]:
    """Run cmd; sample (time, pid, rss, cpu) of it and its descendants every 0.1 s. Returns samples,
    start time, and the CPU seconds of the whole tree (getrusage of reaped children)."""
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    samples: list[tuple] = []
    root = psutil.Process(proc.pid)

    def poll() -> None:
        while proc.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            now = time.time()
            for p in tree:
                try:
                    cpu = p.cpu_times()
                    samples.append(
                        (now, p.pid, p.memory_info().rss, cpu.user + cpu.system, p.pid == proc.pid)
                    )
                except psutil.Error:
                    pass
            time.sleep(0.1)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    output = proc.communicate()[0].decode("utf-8", "replace")
    thread.join()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{output[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return samples, started, cpu


def per_window(samples: list[tuple], windows: list[tuple[str, float, float]]) -> dict[str, dict]:
    """For each (name, start, end): peak RSS of the driver and of the largest worker, CPU seconds of all."""
    by_pid = defaultdict(list)
    for t, pid, rss, cpu, is_driver in samples:
        by_pid[pid].append((t, rss, cpu, is_driver))
    out = {}
    for name, lo, hi in windows:
        driver = worker = 0
        cpu_total = 0.0
        for rows in by_pid.values():
            inside = [r for r in rows if lo <= r[0] <= hi]
            if not inside:
                continue
            peak = max(r[1] for r in inside)
            if rows[0][3]:
                driver = max(driver, peak)
            else:
                worker = max(worker, peak)
            earlier = [r for r in rows if r[0] < lo]
            cpu_total += inside[-1][2] - (earlier[-1][2] if earlier else 0.0)
        out[name] = {"driver_mb": driver / 1e6, "worker_mb": worker / 1e6, "cpu_s": cpu_total}
    return out


def jalm_windows(out: Path, started: float, ended: float) -> list[tuple[str, float, float]]:
    work = out / ".work"

    def last(pattern: str) -> float:
        times = [p.stat().st_mtime for p in work.glob(pattern)]
        return max(times) if times else float("nan")

    marks = [
        ("filter (pass 1)", last("pass1/*.json")),
        ("dedup: exact parts", last("dedup/exact/*.json")),
        ("dedup: near parts", last("dedup/near/*.json")),
        ("dedup: pair buckets", last("dedup/verified/*.json")),
        ("dedup: resolve", last("dedup/counters.json")),
        ("write (pass 3)", last("pass3/*.json")),
        ("stats and report", ended),
    ]
    windows, lo = [], started
    for name, hi in marks:
        if hi == hi:  # not NaN: the step ran
            windows.append((name, lo, hi))
            lo = hi
    return windows


def run_jalm(inputs: Path, out: Path, workers: int, memory: str, config: Path | None) -> dict:
    if out.exists():
        import shutil

        shutil.rmtree(out)
    cmd = [
        sys.executable,
        "-m",
        "jalm",
        "clean",
        *sorted(map(str, inputs.glob("part-*.jsonl"))),
        "--out",
        str(out),
    ]
    cmd += ["--workers", str(workers), "--memory-per-worker", memory, "--keep-intermediate", "--no-progress"]
    cmd += ["--config", str(config)] if config else []
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    samples, started, cpu = run_measured(cmd, env)
    windows = jalm_windows(out, started, max(s[0] for s in samples))
    stats = json.loads((out / "stats.json").read_text())
    return {
        "passes": per_window(samples, windows),
        "cpu_s": cpu,
        "stats": stats,
        "wall_s": windows[-1][2] - started,
    }


def read_jsonl(paths) -> list[dict]:
    from jalm.jsonl import read_records

    return list(read_records(sorted(paths)))


def digest(rows) -> str:
    return hashlib.sha256("\n".join(map(str, sorted(rows))).encode("utf-8")).hexdigest()[:16]


def compare_with_reference(out: Path) -> dict:
    """Decisions of the run (its outputs) against the in-memory reference on the same key files."""
    from jalm.corpus.config import CleanConfig
    from jalm.corpus.dedup_memory import reference_decisions
    from jalm.corpus.dedup_runs import Keys

    work = out / ".work"
    plan = json.loads((work / "plan.json").read_text())
    shards = [(i, s["name"]) for i, s in enumerate(plan["shards"])]
    config = CleanConfig(json.loads((out / "stats.json").read_text())["config"])
    t0 = time.process_time()
    want, counters = reference_decisions(work, shards, config.section("dedup"))
    ref_cpu = time.process_time() - t0
    keys = Keys(work / "keys", shards)
    want_dropped = [
        (keys.doc_id(index << 32 | pos), reason)
        for index, name in shards
        for pos, reason in want.get(name, {}).items()
    ]
    dropped_ids = {i for i, _ in want_dropped}
    want_kept = [
        keys.doc_id(index << 32 | pos)
        for index, _ in shards
        for pos in range(keys.manifest[index]["docs"])
        if keys.doc_id(index << 32 | pos) not in dropped_ids
    ]
    have_dropped = [
        (r["id"], r["reason"])
        for r in read_jsonl((out / "rejected").glob("*.duplicates.*"))
        if r["reason"].startswith(("exact_duplicate", "near_duplicate"))
    ]
    have_kept = [r["id"] for r in read_jsonl((out / "kept").glob("*"))]
    result = {
        "kept": [digest(have_kept), digest(want_kept), len(have_kept)],
        "dropped": [digest(have_dropped), digest(want_dropped), len(have_dropped)],
        "reference_cpu_s": ref_cpu,
    }
    result["equal"] = result["kept"][0] == result["kept"][1] and result["dropped"][0] == result["dropped"][1]
    return result


# ---- datatrove ---------------------------------------------------------------------------------


def _char_signature_class():
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature, create_hash_func
    from datatrove.utils.text import simplify_text

    class CharSignature(MinhashDedupSignature):
        """datatrove's stage 1 with character n-grams (white space removed) instead of word n-grams."""

        def __init__(self, output_folder, config: MinhashConfig) -> None:
            from datatrove.io import get_datafolder
            from datatrove.pipeline.base import PipelineStep

            PipelineStep.__init__(self)
            self.output_folder = get_datafolder(output_folder)
            self.config = config
            self.num_hashes = config.num_buckets * config.hashes_per_bucket
            self._parameters = None
            self._hash_func = create_hash_func(config.hash_config)
            self.skip_existing_sigs = False

        def get_shingles(self, text: str) -> np.ndarray:
            dense = "".join(simplify_text(text, self.config.norm_config).split())
            n = self.config.n_grams
            return np.fromiter(
                (self._hash_func(dense[i : i + n].encode("utf-8")) for i in range(len(dense) - n + 1)),
                dtype=np.uint64,
            ).reshape((-1, 1))

    return CharSignature


def datatrove_stage(stage: int, inputs: Path, work: Path, workers: int) -> None:
    """One of datatrove's 4 MinHash stages (run in its own process, so its CPU is measured alone)."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    import clean_scale

    config = MinhashConfig(n_grams=5, num_buckets=16, hashes_per_bucket=8)
    files = len(list(inputs.glob("part-*.jsonl")))
    reader = JsonlReader(str(inputs), glob_pattern="part-*.jsonl")
    pipelines = {
        1: ([reader, clean_scale._char_signature_class()(str(work / "sigs"), config)], files),
        2: (
            [MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=config)],
            config.num_buckets,
        ),
        3: ([MinhashDedupCluster(str(work / "buckets"), str(work / "remove"), config=config)], 1),
        4: (
            [
                reader,
                MinhashDedupFilter(str(work / "remove"), exclusion_writer=JsonlWriter(str(work / "removed"))),
                JsonlWriter(str(work / "kept")),
            ],
            files,
        ),
    }
    steps, tasks = pipelines[stage]
    LocalPipelineExecutor(steps, tasks=tasks, workers=workers, logging_dir=str(work / f"logs{stage}")).run()


def run_datatrove(inputs: Path, work: Path, workers: int) -> dict:
    if work.exists():
        import shutil

        shutil.rmtree(work)
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'benchmarks'}"}
    passes = {}
    for stage in (1, 2, 3, 4):
        cmd = [
            sys.executable,
            __file__,
            "--dt-stage",
            str(stage),
            "--dt-in",
            str(inputs),
            "--dt-work",
            str(work),
        ]
        cmd += ["--workers", str(workers)]
        samples, started, cpu = run_measured(cmd, env)
        window = per_window(samples, [("all", started, max(s[0] for s in samples))])["all"]
        # CPU from the 0.1 s samples of every process: datatrove's workers are children of its forkserver,
        # which getrusage(RUSAGE_CHILDREN) of this process does not see (cpu_rusage_s: what it does see).
        passes[f"stage {stage}"] = {**window, "cpu_rusage_s": cpu}
    return {"passes": passes, "cpu_s": sum(p["cpu_s"] for p in passes.values())}


def jaccard(a: str, b: str) -> float:
    a, b = "".join(a.split()), "".join(b.split())
    x = {a[i : i + 5] for i in range(len(a) - 4)}
    y = {b[i : i + 5] for i in range(len(b) - 4)}
    return len(x & y) / len(x | y) if x | y else 1.0


def quality(inputs: Path, dropped: dict[str, set[str]], samples: int = 2000) -> dict:
    """Precision and recall of each tool's dropped set against exact Jaccard >= 0.7 (see the docstring)."""
    truth = json.loads((inputs / "truth.json").read_text())
    family, source = truth["family"], truth["source"]
    texts = [r["text"] for r in read_jsonl(inputs.glob("part-*.jsonl"))]
    members = defaultdict(list)
    for i, f in enumerate(family):
        members[f].append(i)
    rng = random.Random(1)
    copies = [i for i, s in enumerate(source) if s >= 0]
    true_pairs = [(i, source[i]) for i in rng.sample(copies, min(samples * 2, len(copies)))]
    true_pairs = [(i, s) for i, s in true_pairs if jaccard(texts[i], texts[s]) >= 0.7][:samples]
    out = {"true_pairs_sampled": len(true_pairs)}
    for tool, gone in dropped.items():
        found = sum(1 for i, s in true_pairs if f"d{i}" in gone or f"d{s}" in gone)
        sample = rng.sample(sorted(gone), min(samples, len(gone)))
        right = 0
        for doc in sample:
            i = int(doc[1:])
            right += any(
                f"d{j}" not in gone and j != i and jaccard(texts[i], texts[j]) >= 0.7
                for j in members[family[i]]
            )
        out[tool] = {
            "dropped": len(gone),
            "recall": found / max(1, len(true_pairs)),
            "precision": right / max(1, len(sample)),
        }
    return out


DEDUP_ONLY = """# jalm clean as a pure dedup pipeline (read, normalise, dedup, write), for the datatrove comparison
[lines]
enabled = false
[pii]
mode = "off"
"""


def dedup_only_config(path: Path) -> Path:
    from jalm.corpus.config import CleanConfig

    text = DEDUP_ONLY + "".join(
        f"[filters.{name}]\nenabled = false\n" for name, _ in CleanConfig.load().filters()
    )
    path.write_text(text)
    return path


def rerun_dedup_steps(out: Path, workers: int) -> dict:
    """Steps 2-5 of a finished run kept with --keep-intermediate, again, measured alone; their files must
    come out byte for byte the same as the first time."""
    import filecmp
    import shutil

    work = out / ".work"
    old = out / "dedup-first"
    if not old.exists():
        shutil.move(work / "dedup", old)
    shutil.rmtree(work / "dedup", ignore_errors=True)
    code = (
        "import json, sys; from pathlib import Path; from jalm.corpus import dedup_pairs; from jalm.corpus.config "
        "import CleanConfig; from jalm.executors import Executor; out = Path(sys.argv[1]); w = out / '.work'; "
        "plan = json.loads((w / 'plan.json').read_text()); shards = [(i, s['name']) for i, s in enumerate(plan['shards'])]; "
        "cfg = CleanConfig(json.loads((out / 'stats.json').read_text())['config']).section('dedup'); "
        "p = dedup_pairs.make_plan(w, shards, cfg, int(sys.argv[2]));\n"
        "with Executor(int(sys.argv[2])) as r:\n"
        " [r.run(dedup_pairs.run_part, dedup_pairs.jobs(w, shards, p, s)) for s in ('exact', 'near', 'bucket')]\n"
        " r.run(dedup_pairs.resolve_job, [dedup_pairs.Part(w, shards, p, 'resolve')])"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    samples, started, cpu = run_measured([sys.executable, "-c", code, str(out), str(workers)], env)
    windows = [w for w in jalm_windows(out, started, max(s[0] for s in samples)) if w[0].startswith("dedup")]
    same = all(filecmp.cmp(a, work / "dedup" / a.relative_to(old), shallow=False) for a in old.rglob("*.npy"))
    return {"passes": per_window(samples, windows), "cpu_s": cpu, "files_identical": same}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--memory", default="64MB")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/clean_scale"))
    parser.add_argument("--datatrove", action="store_true")
    parser.add_argument("--skip-scale", action="store_true", help="no jalm scale runs (e.g. datatrove alone)")
    parser.add_argument(
        "--quality-only", action="store_true", help="precision/recall from the runs already in --out"
    )
    parser.add_argument(
        "--rules", choices=("default", "dedup-only"), default="default", help="the rules of the scale runs"
    )
    parser.add_argument(
        "--rerun-dedup", type=Path, metavar="RUN", help="steps 2-5 of RUN again, measured alone"
    )
    parser.add_argument("--dt-stage", type=int)
    parser.add_argument("--dt-in", type=Path)
    parser.add_argument("--dt-work", type=Path)
    args = parser.parse_args()
    if args.dt_stage:
        datatrove_stage(args.dt_stage, args.dt_in, args.dt_work, args.workers)
        return
    if args.rerun_dedup:
        result = rerun_dedup_steps(args.rerun_dedup, args.workers)
        print(json.dumps(result, indent=1))
        (args.rerun_dedup / "rerun-dedup.json").write_text(json.dumps(result, indent=1))
        return
    results: dict = {"memory": args.memory, "workers": args.workers, "sizes": {}}
    for n in args.sizes:
        inputs = args.out / f"docs-{n}"
        t0 = time.time()
        generate(n, inputs)
        print(f"{n}: generated in {time.time() - t0:.0f} s", flush=True)
        if args.skip_scale:
            continue
        config = dedup_only_config(args.out / "dedup_only.toml") if args.rules == "dedup-only" else None
        tag = "jalm-dedup" if config else "jalm"
        run = run_jalm(inputs, args.out / f"{tag}-{n}", args.workers, args.memory, config)
        run["decisions"] = compare_with_reference(args.out / f"{tag}-{n}")
        run["dedup"] = run.pop("stats")["dedup"]
        results["sizes"][n] = run
        print(json.dumps({n: run}, indent=1), flush=True)
        (
            args.out
            / f"results-{args.rules}-{'-'.join(map(str, args.sizes))}-{args.datatrove}-{args.skip_scale}.json"
        ).write_text(json.dumps(results, indent=1))
    n = max(args.sizes)
    inputs = args.out / f"docs-{n}"
    if args.datatrove:
        results["datatrove"] = run_datatrove(inputs, args.out / f"datatrove-{n}", args.workers)
        print(json.dumps(results["datatrove"], indent=1), flush=True)
    if args.quality_only:
        jalm_dropped = {r["id"] for r in read_jsonl((args.out / f"jalm-dedup-{n}" / "rejected").glob("*"))}
        dt_dropped = {
            r["id"] for r in read_jsonl((args.out / f"datatrove-{n}" / "removed").rglob("*.jsonl*"))
        }
        results["quality"] = quality(inputs, {"jalm": jalm_dropped, "datatrove": dt_dropped})
        print(json.dumps(results["quality"], indent=1), flush=True)
    (
        args.out
        / f"results-{args.rules}-{'-'.join(map(str, args.sizes))}-{args.datatrove}-{args.skip_scale}.json"
    ).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
