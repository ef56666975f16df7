"""WARC → clean JSONL, MB per CPU-second: `jalm clean` against datatrove's WarcReader + Trafilatura.

    .venv/bin/python benchmarks/clean_warc_speed.py [--data ../shared/data] [--copies 8] [--repeats 3]

Input: WARC files built here from the 75 real HTML pages of ../shared/data/noisy/web_raw.jsonl,
each page --copies times under different URLs, written with warcio as Common Crawl writes them (gzip
per record, a request record before each response, WARC-Identified-Payload-Type set); one page in
four encoded as Shift_JIS and one in four as EUC-JP (declared in the HTTP header), the rest UTF-8;
split over 4 files. MB = bytes of the WARC files.
Rows (best of --repeats, runs interleaved so that other load hits all alike; output folders emptied
before each run); MB per CPU-second counts the .warc.gz bytes:
- datatrove 0.10.1: LocalPipelineExecutor(tasks=1, workers=1) of WarcReader → Trafilatura(timeout=60)
  (its defaults but the per-page timeout, raised from 1 s so that a loaded machine drops no page) →
  JsonlWriter: reading, decoding, extraction, writing; no filtering, no dedup. Its extraction runs in
  a child process, which it joins: that CPU time is counted;
- jalm clean, 1 worker, resiliparse (the default) and trafilatura: the whole `clean()` (reading,
  decoding, extraction, normalisation, all default filters, exact + MinHash dedup, kept/rejected .zst
  shards, stats.json; no report.md/png), so jalm does more work per page than the baseline.
CPU seconds: this process plus its finished children (resource.getrusage), which other users' load
barely changes; wall seconds are shown too. Imports happen before timing, for both.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import resource
import shutil
import time
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from jalm.corpus import CleanConfig, clean
from jalm.corpus.shardjob import tune_allocator

WORK = Path(__file__).resolve().parents[1] / "runs" / "bench_warc"


def build_warcs(data: Path, copies: int, n_files: int = 4) -> list[Path]:
    with open(data / "noisy" / "web_raw.jsonl", encoding="utf-8") as handle:
        pages = [r["text"] for r in map(json.loads, handle) if r.get("kind") == "html"]
    folder = WORK / "warc"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    paths = [folder / f"crawl-{i}.warc.gz" for i in range(n_files)]
    handles = [open(p, "wb") for p in paths]
    writers = [WARCWriter(h, gzip=True) for h in handles]
    n = 0
    for copy in range(copies):
        for i, page in enumerate(pages):
            codec, label = [
                ("utf-8", "UTF-8"),
                ("cp932", "Shift_JIS"),
                ("utf-8", "UTF-8"),
                ("euc_jp", "EUC-JP"),
            ][n % 4]
            body = page.encode(codec, errors="replace")
            url = f"https://site{i % 7}.example.jp/{copy}/page{i}.html"
            writer = writers[n % n_files]
            request = StatusAndHeaders(
                f"GET /{copy}/page{i}.html HTTP/1.1", [("Host", "x")], is_http_request=True
            )
            writer.write_record(
                writer.create_warc_record(url, "request", payload=io.BytesIO(b""), http_headers=request)
            )
            http = StatusAndHeaders(
                "200 OK", [("Content-Type", f"text/html; charset={label}")], protocol="HTTP/1.1"
            )
            record = writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http)
            record.rec_headers.add_header("WARC-Identified-Payload-Type", "text/html")
            writer.write_record(record)
            n += 1
    for handle in handles:
        handle.close()
    return paths


def _gunzip(path: Path) -> bytes:
    import gzip

    return gzip.decompress(path.read_bytes())


def cpu_seconds() -> float:
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def run_datatrove(folder: Path) -> int:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import JsonlWriter

    out = WORK / "datatrove_out"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(WORK / "datatrove_logs", ignore_errors=True)
    executor = LocalPipelineExecutor(
        pipeline=[WarcReader(str(folder)), Trafilatura(timeout=60), JsonlWriter(str(out))],
        tasks=1,
        workers=1,
        logging_dir=str(WORK / "datatrove_logs"),
        skip_completed=False,
    )
    executor.run()
    return sum(1 for f in out.glob("*.jsonl*") for _ in _lines(f))


def _lines(path: Path):
    import gzip

    with (
        gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8") as h
    ):
        yield from h


def run_jalm(paths: list[Path], extractor: str) -> int:
    out = WORK / f"jalm_out_{extractor}"
    shutil.rmtree(out, ignore_errors=True)
    config = CleanConfig.load(overrides={"html": {"extractor": extractor}})
    stats = clean(paths, out, config=config, workers=1, progress=False, report=False)
    return stats["kept"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    )
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tune_allocator()
    from loguru import logger  # datatrove logs every step through loguru

    logger.remove()
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    paths = build_warcs(args.data, args.copies)
    mb = sum(p.stat().st_size for p in paths) / 1e6
    raw = sum(len(_gunzip(p)) for p in paths) / 1e6
    print(
        f"input: {len(paths)} WARC files, {mb:.1f} MB ({raw:.1f} MB uncompressed); {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    # Imports and first calls before timing, for every row.
    import datatrove.pipeline.extractors  # noqa: F401
    import trafilatura  # noqa: F401
    from resiliparse.extract.html2text import extract_plain_text

    extract_plain_text("<p>x</p>")
    rows = {
        "datatrove 0.10.1: WarcReader → Trafilatura → JsonlWriter": (run_datatrove, (paths[0].parent,)),
        "jalm clean, 1 worker, --extractor resiliparse (default)": (run_jalm, (paths, "resiliparse")),
        "jalm clean, 1 worker, --extractor trafilatura": (run_jalm, (paths, "trafilatura")),
    }
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    outputs: dict[str, int] = {}
    for _ in range(args.repeats):
        for name, (function, call_args) in rows.items():
            c0, w0 = cpu_seconds(), time.perf_counter()
            outputs[name] = function(*call_args)
            wall[name] = min(wall.get(name, float("inf")), time.perf_counter() - w0)
            cpu[name] = min(cpu.get(name, float("inf")), cpu_seconds() - c0)
    base = next(iter(rows))
    print("\n| run | documents out | wall s | CPU s | MB per CPU-second | × datatrove per CPU-second |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in rows:
        per_cpu = mb / cpu[name]
        print(
            f"| {name} | {outputs[name]} | {wall[name]:.2f} | {cpu[name]:.2f} | {per_cpu:.2f} | "
            f"{per_cpu / (mb / cpu[base]):.1f} |"
        )
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
