"""`pack`: clean JSONL shards → a packed directory of token shards, by shard jobs on local workers or Ray.

Each input file is a shard; a plain .jsonl file larger than `shard_bytes` is cut into byte ranges at
line boundaries, one shard each (compressed files cannot be cut and stay whole). The jobs (packjob.py)
run on the executors `jalm clean` uses (jalm.executors): inline, `workers` local processes, or
Ray. A rerun into the same directory skips the shards whose marker is there, so a killed run resumes
at shard granularity; shards packed from other inputs or with other settings are refused rather than
mixed in. When every shard is done, meta.json sums them and lists the shards in order.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from jalm.data.packjob import PackJob, pack_shard, read_marker
from jalm.data.tokens import SHARDS_DIR
from jalm.errors import JalmError
from jalm.io import (
    TMP_PREFIX,
    base_name,
    begin_run,
    end_run,
    file_size,
    is_url,
    refuse_incomplete,
    refuse_url,
    remove_temp_files,
    write_atomic,
)
from jalm.jsonl import expand_inputs

META_FILE = "meta.json"
FORMAT = 2  # 1: one train.bin / val.bin (read, no longer written); 2: shards/
SHARD_BYTES = 256 << 20  # a big plain JSONL file is cut into ranges of this size
MAX_DOC_TOKENS = 1_000_000  # a longer "document" is a dump or a concatenation (clean's max_chars is 1M)
SPLITS = ("train", "val")
COUNTS = ("documents", "tokens", "chars")


def pack(
    inputs: list[str | Path],
    tokenizer_dir: str | Path,
    out_dir: str | Path,
    val_fraction: float = 0.01,
    seq_len: int = 512,
    progress: bool = True,
    *,
    workers: int | None = None,
    executor: str = "local",
    retries: int | None = None,
    task_memory: int | None = None,
    shard_bytes: int = SHARD_BYTES,
    max_doc_tokens: int = MAX_DOC_TOKENS,
    text_field: str = "text",
    threads: int | None = None,
    allow_incomplete: bool = False,
) -> dict:
    """Tokenize documents into train/val token shards (resuming a killed run); returns (and writes) meta.json.

    `max_doc_tokens`: longer documents are set aside and counted (0: no limit); empty ones are counted
    too. `threads`: SentencePiece threads per job (default: all cores with one local worker, else 1).
    """
    from jalm.executors import DEFAULT_RETRIES, DEFAULT_TASK_MEMORY, Executor
    from jalm.tokenizer import tokenizer_model_file
    from jalm.tokenizer.encoder import load_encoder

    if shard_bytes < 1:
        raise JalmError(f"shard_bytes must be at least 1, got {shard_bytes}")
    refuse_url(out_dir, "jalm pack")
    refuse_incomplete(list(inputs), allow_incomplete)
    # inputs may be URLs (str, read through fsspec by each job); local files are made absolute
    files = list(dict.fromkeys(p if is_url(p) else p.resolve() for p in expand_inputs(inputs, urls=True)))
    model_file = Path(tokenizer_model_file(tokenizer_dir)).absolute()  # jobs may run elsewhere (Ray)
    if not model_file.is_file():
        raise JalmError(f"{tokenizer_dir}: no tokenizer (spiece.model, tokenizer.model or tokenizer.json)")
    sp = load_encoder(model_file)
    vocab = sp.get_piece_size()
    out = Path(out_dir).absolute()
    settings = {
        "format": FORMAT,
        "dtype": "uint16" if vocab <= 2**16 else "uint32",
        "val_fraction": val_fraction,
        "max_doc_tokens": max_doc_tokens,
        "text_field": text_field,
        "tokenizer_sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
    }
    if threads is None:
        threads = 0 if ((workers or 1) <= 1 and executor == "local") else 1
    jobs = plan_jobs(files, out, model_file, settings, shard_bytes, threads)
    done = _check_existing(out, jobs)
    todo = [job for job in jobs if job.name not in done]
    begin_run(out, "jalm pack")  # until meta.json is written, `jalm train` refuses this directory
    start = time.perf_counter()
    with (
        _PackProgress(jobs, done, progress) as tally,
        Executor(
            workers,
            executor,
            DEFAULT_RETRIES if retries is None else retries,
            DEFAULT_TASK_MEMORY if task_memory is None else task_memory,
        ) as runner,
    ):
        runner.run(pack_shard, todo, progress=tally)
    remove_temp_files(out / SHARDS_DIR)  # those of workers that died and were replaced
    markers = [read_marker(out, job.name) for job in jobs]
    meta = _meta(markers, files, settings, vocab, sp.eos_id(), seq_len)
    meta.update(
        seconds=round(time.perf_counter() - start, 2), resumed_shards=len(done), workers=runner.workers
    )
    if meta["train_documents"] == 0:
        raise JalmError(f"{', '.join(map(str, files))}: no documents with text to pack")
    if meta["train_tokens"] < seq_len + 1:
        raise JalmError(
            f"{files[0]}: only {meta['train_tokens']} training tokens, fewer than one sequence of {seq_len + 1}"
        )
    tok_out = out / "tokenizer"
    if tok_out.resolve() != Path(tokenizer_dir).resolve():
        shutil.rmtree(tok_out, ignore_errors=True)
        _copy_tokenizer(Path(tokenizer_dir), tok_out)
    for name in ("train.bin", "val.bin"):  # a format-1 pack that was here: meta.json no longer names it
        (out / name).unlink(missing_ok=True)
    write_atomic(out / META_FILE, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    end_run(out)
    return meta


# The tokenizer files of a model directory (a base for continued pretraining); its weights stay behind.
MODEL_DIR_TOKENIZER_FILES = (
    "spiece.model",
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "jalm_extend.json",
)


def _copy_tokenizer(tokenizer_dir: Path, tok_out: Path) -> None:
    """A tokenizer directory is copied whole; of a model directory, only its tokenizer files, byte for byte."""
    if not (tokenizer_dir / "config.json").exists():
        shutil.copytree(tokenizer_dir, tok_out)
        return
    tok_out.mkdir(parents=True)
    for name in MODEL_DIR_TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copy2(tokenizer_dir / name, tok_out / name)


def plan_jobs(
    files: list[Path], out: Path, model_file: Path, settings: dict, shard_bytes: int, threads: int
) -> list[PackJob]:
    """One job per file, or per `shard_bytes` range of a big plain .jsonl; names unique and stable."""
    jobs, used = [], {}
    for path in files:
        base = _stem(path)
        used[base] = used.get(base, 0) + 1
        name = base if used[base] == 1 else f"{base}-{used[base]}"
        size = file_size(path)
        common = {"out": str(out), "tokenizer": str(model_file), "settings": settings, "threads": threads}
        if base_name(path).lower().endswith((".gz", ".zst")) or size <= shard_bytes:
            jobs.append(PackJob(name, str(path), 0, -1, size, **common))
            continue
        for index, begin in enumerate(range(0, size, shard_bytes)):
            end = min(begin + shard_bytes, size)
            jobs.append(PackJob(f"{name}.{index:05d}", str(path), begin, end, end - begin, **common))
    return jobs


def _stem(path: Path | str) -> str:
    name = base_name(path)
    for suffix in (".gz", ".zst", ".jsonl", ".ndjson", ".json"):
        name = name.removesuffix(suffix)
    return name or "shard"


def _check_existing(out: Path, jobs: list[PackJob]) -> set[str]:
    """The names of jobs already done; refuses shards of other inputs or settings, drops stale temp files."""
    folder = out / SHARDS_DIR
    if not folder.is_dir():
        return set()
    by_name = {job.name: job for job in jobs}
    done = set()
    for path in sorted(folder.iterdir()):
        if path.name.startswith(TMP_PREFIX):  # a write that a killed run left unfinished
            path.unlink(missing_ok=True)
            continue
        if not path.name.endswith(".json"):
            continue
        name = path.name.removesuffix(".json")
        marker = json.loads(path.read_text(encoding="utf-8"))
        job = by_name.get(name)
        if job is None or marker.get("source") != job.source() or marker.get("settings") != job.settings:
            what = "inputs" if job is None or marker.get("source") != job.source() else "settings"
            raise JalmError(
                f"{path}: a shard packed from other {what} than this run's; pack into a new --out "
                f"(or delete {folder})"
            )
        done.add(name)
    return done


def _meta(markers: list[dict], files: list[Path], settings: dict, vocab: int, eos: int, seq_len: int) -> dict:
    skipped = {"empty": 0, "too_long": 0}
    examples: dict[str, list[str]] = {}
    for marker in markers:
        for reason, count in marker["skipped"].items():
            skipped[reason] += count
        for reason, where in marker["skipped_examples"].items():
            examples.setdefault(reason, []).extend(where[: max(0, 10 - len(examples.get(reason, [])))])
    keys = [f"{split}_{key}" for split in SPLITS for key in COUNTS]
    return {
        "format": FORMAT,
        "dtype": settings["dtype"],
        "vocab_size": vocab,
        "eos_id": eos,
        "seq_len": seq_len,
        "val_fraction": settings["val_fraction"],
        "max_doc_tokens": settings["max_doc_tokens"],
        "tokenizer_sha256": settings["tokenizer_sha256"],
        "inputs": [str(f) for f in files],
        **{key: sum(m[key] for m in markers) for key in keys},
        "skipped": skipped,
        "skipped_examples": examples,
        "shards": [{"name": m["name"], **{key: m[key] for key in keys}} for m in markers],
    }


class _PackProgress:
    """Input bytes against the total (for the ETA), with documents/s and tokens/s beside them."""

    def __init__(self, jobs: list[PackJob], done: set[str], show: bool) -> None:
        from jalm.progress import progress_bar

        self.docs = self.tokens = 0
        self.started = time.perf_counter()
        initial = sum(job.planned_bytes for job in jobs if job.name in done)
        self.bar = progress_bar(
            total=sum(job.planned_bytes for job in jobs),
            initial=initial,
            desc="pack",
            unit="B",
            unit_scale=True,
            disable=not show,
        )

    def __enter__(self) -> _PackProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.close()

    def add(self, docs: int, n_bytes: int, tokens: int = 0) -> None:
        self.docs += docs
        self.tokens += tokens
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix_str(
            f"{self.docs / elapsed:,.0f} docs/s, {self.tokens / elapsed:,.0f} tokens/s", refresh=False
        )
        self.bar.update(n_bytes)

    @staticmethod
    def counts_of(marker: dict) -> tuple[int, int, int]:
        """A finished Ray task's counts, from its marker."""
        docs = sum(marker[f"{s}_documents"] for s in SPLITS) + sum(marker["skipped"].values())
        return docs, marker["source"]["bytes"], sum(marker[f"{s}_tokens"] for s in SPLITS)


def read_meta(packed_dir: str | Path) -> dict:
    path = Path(packed_dir) / META_FILE
    if not path.exists():
        raise JalmError(f"{packed_dir}: not a packed directory (no {META_FILE}); run `jalm pack` first")
    return json.loads(path.read_text(encoding="utf-8"))
