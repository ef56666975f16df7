"""Build data/dpo/demo.jsonl.zst: a small Japanese preference set (chosen/rejected pairs) for the demo.

Made from the bundled instruction set data/sft/demo.jsonl.zst (itself made by rule from public-domain
Aozora Bunko works, see scripts/make_sft_demo_data.py), no model involved: for the first
`PAIRS` conversations the prompt is every message but the last, `chosen` the right final reply, and
`rejected` one of three wrong ones, in turn (single-turn conversations of the five short tasks only):
- `wrong`: the final reply of the next conversation with the same task (a fluent answer to another
  question),
- `truncated`: the right reply cut to its first half (an answer that stops mid-way),
- `off_format`: the request echoed back instead of answered (the first line of the last user turn).
Each record keeps `task`, `source`, `title`, `author` and says which `rejected_kind` it is.

Deterministic (no randomness, no network): running it twice writes the same bytes.

    .venv/bin/python scripts/make_dpo_demo_data.py [OUT]    # default data/dpo/demo.jsonl.zst
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import zstandard

from jalm.jsonl import iter_lines

REPO = Path(__file__).resolve().parents[1]
SFT_DEMO = REPO / "data" / "sft" / "demo.jsonl.zst"
DEFAULT_OUT = REPO / "data" / "dpo" / "demo.jsonl.zst"
PAIRS = 600
# Short single-turn tasks only: the demo's DPO stage (a reference pass, held-out figures before and after,
# a few steps) has to fit in ~20 s on 2 cores; the long-passage tasks would triple its tokens.
TASKS = ("continue_sentence", "repeat_word", "count_chars", "katakana_to_hiragana", "hiragana_to_katakana")
KINDS = ("wrong", "truncated", "off_format")


def rejected_reply(kind: str, record: dict, records: list[dict], index: int) -> str | None:
    chosen = record["messages"][-1]["content"]
    if kind == "wrong":
        task = record["task"].split("+")[-1]
        for other in records[index + 1 :] + records[:index]:
            reply = other["messages"][-1]["content"]
            if other["task"].split("+")[-1] == task and reply != chosen:
                return reply
        return None
    if kind == "truncated":
        return chosen[: len(chosen) // 2] if len(chosen) >= 2 else None
    first_line = record["messages"][-2]["content"].split("\n")[0].strip()
    return first_line if first_line and first_line != chosen else None


def build() -> list[dict]:
    records = [json.loads(line) for _, line in iter_lines(SFT_DEMO)]
    pairs = []
    for index, record in enumerate(records):
        if len(pairs) == PAIRS:
            break
        if record["task"] not in TASKS:
            continue
        kind = KINDS[len(pairs) % len(KINDS)]
        rejected = rejected_reply(kind, record, records, index)
        if rejected is None:
            continue
        pairs.append(
            {
                "prompt": record["messages"][:-1],
                "chosen": [record["messages"][-1]],
                "rejected": [{"role": "assistant", "content": rejected}],
                "rejected_kind": kind,
                **{key: record[key] for key in ("task", "source", "title", "author") if key in record},
            }
        )
    return pairs


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    pairs = build()
    text = "".join(json.dumps(p, ensure_ascii=False, sort_keys=True) + "\n" for p in pairs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(zstandard.ZstdCompressor(level=19).compress(text.encode("utf-8")))
    print(f"{out}: {len(pairs)} pairs, {Counter(p['rejected_kind'] for p in pairs)}")


if __name__ == "__main__":
    main()
