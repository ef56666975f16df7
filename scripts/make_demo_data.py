"""Rebuild the bundled demo data in data/ from ../shared/data (run once by maintainers; the output is committed).

The subset is chosen to keep the repository small (a few MB compressed) while giving the demo enough
real text: all JaQuAD Wikipedia training articles, a slice of Aozora Bunko (whole works, every author),
the JaQuAD dev articles as the held-out set, a few raw web documents for the cleaning stage, and the
evaluation sets (JSQuAD dev and v1.3 test, AI王 2nd dev).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import zstandard

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OUT = Path(__file__).resolve().parents[1] / "data"
AOZORA_CHAR_BUDGET = 1_200_000
NOISY_PER_KIND = 4


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_zst(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zstandard.ZstdCompressor(level=19).compress(data))
    print(f"{path.relative_to(OUT.parent)}: {len(data):,} bytes -> {path.stat().st_size:,}")


def write_jsonl_zst(path: Path, records: list[dict]) -> None:
    write_zst(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8"))


def aozora_slice(records: list[dict]) -> list[dict]:
    # Round-robin over authors so every author is represented, shortest works first, until the budget.
    by_author: dict[str, list[dict]] = {}
    for record in sorted(records, key=lambda r: len(r["text"])):
        by_author.setdefault(record.get("author", ""), []).append(record)
    chosen, total = [], 0
    while total < AOZORA_CHAR_BUDGET and any(by_author.values()):
        for works in by_author.values():
            if works and total < AOZORA_CHAR_BUDGET:
                work = works.pop(0)
                chosen.append(work)
                total += len(work["text"])
    return chosen


def noisy_slice(records: list[dict]) -> list[dict]:
    by_kind: dict[str, list[dict]] = {}
    for record in records:
        if len(record["text"]) < 60_000:
            by_kind.setdefault(record.get("kind", record.get("source", "")), []).append(record)
    return [r for works in by_kind.values() for r in works[:NOISY_PER_KIND]]


def main() -> int:
    if not SHARED.is_dir():
        print(f"{SHARED}: not found", file=sys.stderr)
        return 1
    write_jsonl_zst(
        OUT / "corpus" / "wiki_jaquad.jsonl.zst", read_jsonl(SHARED / "corpus" / "wiki_jaquad.jsonl")
    )
    write_jsonl_zst(
        OUT / "corpus" / "aozora.jsonl.zst", aozora_slice(read_jsonl(SHARED / "corpus" / "aozora.jsonl"))
    )
    write_jsonl_zst(OUT / "dev" / "wiki_jaquad.jsonl.zst", read_jsonl(SHARED / "dev" / "wiki_jaquad.jsonl"))
    write_jsonl_zst(
        OUT / "noisy" / "web_raw.jsonl.zst", noisy_slice(read_jsonl(SHARED / "noisy" / "web_raw.jsonl"))
    )
    for name in ("jsquad-valid-v1.1.json", "jsquad-test-v1.3.json", "aio/aio_02_dev.tsv"):
        write_zst(OUT / "eval" / (name + ".zst"), (SHARED / "eval" / name).read_bytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
