"""Readers: Parquet, plain-text and HTML folders, compressed JSONL; HTML reduced to its main text."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from jalm.corpus import clean
from jalm.jsonl import read_records

ROOT = Path(__file__).resolve().parents[1]


def wiki(n: int) -> list[dict]:
    return [r for _, r in zip(range(n), read_records([ROOT / "data" / "corpus" / "wiki_jaquad.jsonl.zst"]))]


def test_parquet_rows_are_documents(tmp_path: Path) -> None:
    records = wiki(5)
    table = pa.table(
        {
            "text": [r["text"] for r in records] + [None],
            "title": [r["title"] for r in records] + ["no text"],
            "year": list(range(2000, 2006)),
        }
    )
    pq.write_table(table, tmp_path / "docs.parquet")
    stats = clean([tmp_path / "docs.parquet"], tmp_path / "out", progress=False, compress="gz")
    assert stats["input"] == 6 and stats["kept"] == 5 and stats["malformed"] == 1
    kept = list(read_records([tmp_path / "out" / "kept" / "docs.jsonl.gz"]))
    assert [r["id"] for r in kept] == [f"docs:{i}" for i in range(1, 6)]
    assert kept[0]["title"] == records[0]["title"] and kept[0]["year"] == 2000


PAGE = """<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><title>{title}</title>
<script>window.dataLayer = [];function gtag(){{dataLayer.push(arguments);}}</script>
<style>body {{ font-family: sans-serif; }}</style></head>
<body>
<header><nav><ul><li><a href="/">ホーム</a></li><li><a href="/about">会社概要</a></li>
<li><a href="/contact">お問い合わせ</a></li><li><a href="/sitemap">サイトマップ</a></li></ul></nav></header>
<main><article><h1>{title}</h1>
{paragraphs}
</article></main>
<footer><p>Copyright © 2024 Example Inc. All Rights Reserved.</p><a href="/privacy">プライバシーポリシー</a></footer>
</body></html>"""


def test_html_folder_keeps_main_text_only(tmp_path: Path) -> None:
    pages = tmp_path / "site"
    pages.mkdir()
    for i, record in enumerate(wiki(3)):
        paragraphs = "\n".join(f"<p>{p}</p>" for p in record["text"].split("\n") if p.strip())
        (pages / f"page{i}.html").write_text(
            PAGE.format(title=record["title"], paragraphs=paragraphs), encoding="utf-8"
        )
    (pages / "empty.html").write_text(
        "<html><body><nav><a href='/'>ホーム</a></nav></body></html>", encoding="utf-8"
    )
    (pages / "notes.txt").write_text(wiki(4)[3]["text"], encoding="utf-8")
    stats = clean([pages], tmp_path / "out", progress=False)
    assert stats["input"] == 5 and stats["kept"] == 4
    # The navigation-only page has no main text worth keeping ("ホーム" at most).
    (rejected,) = read_records([tmp_path / "out" / "rejected" / "site.jsonl.zst"])
    assert rejected["id"] == "site:empty.html" and rejected["reason"].startswith(
        ("html_extraction:", "length:")
    )
    kept = {r["id"]: r for r in read_records([tmp_path / "out" / "kept" / "site.jsonl.zst"])}
    assert set(kept) == {"site:page0.html", "site:page1.html", "site:page2.html", "site:notes.txt"}
    page = kept["site:page0.html"]
    assert page["extracted_from"] == "html" and page["source"].endswith("page0.html")
    for boilerplate in ("dataLayer", "font-family", "会社概要", "Copyright", "プライバシーポリシー", "<p>"):
        assert boilerplate not in page["text"]
    first_paragraph = wiki(1)[0]["text"].split("\n")[0]
    assert first_paragraph[:40] in page["text"]


def test_html_inside_jsonl_is_detected(tmp_path: Path) -> None:
    record = wiki(1)[0]
    paragraphs = "\n".join(f"<p>{p}</p>" for p in record["text"].split("\n") if p.strip())
    html = PAGE.format(title=record["title"], paragraphs=paragraphs)
    src = tmp_path / "crawl.jsonl"
    import json

    src.write_text(
        json.dumps({"text": html, "url": "https://example.jp/a"}, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    stats = clean([src], tmp_path / "out", progress=False, compress="none")
    assert stats["kept"] == 1 and stats["html_extracted"] == 1
    (kept,) = read_records([tmp_path / "out" / "kept" / "crawl.jsonl"])
    assert kept["url"] == "https://example.jp/a" and "<p>" not in kept["text"]


def test_jsonl_records_read_exactly_as_the_json_module_reads_them() -> None:
    """The fast parser must not change a record: big integers, floats, NaN, nested values, lone
    surrogates and broken lines come out as json.loads gives them (or the same problem)."""
    import json as json_module

    from jalm.corpus.readers import parse_line

    lines = [
        '{"text": "日本語の本文", "id": 7}',
        '{"text": "a", "n": 123456789012345678901234567890}',
        '{"text": "a", "n": -123456789012345678901234567890}',
        '{"text": "a", "score": 0.1, "big": 1e400}',
        '{"text": "a", "x": NaN}',
        '{"text": "a", "meta": {"n": 123456789012345678901234567890, "tags": ["x", 1.5]}}',
        '{"text": "\\ud800"}',
        '\ufeff{"text": "a"}',
        '{"text": 5}',
        "[1, 2]",
        '{"text": "a"',
    ]
    for line in lines:
        item = parse_line("1", line.encode("utf-8"), "text")
        try:
            expected = json_module.loads(line)
        except json_module.JSONDecodeError:
            assert item.record is None and item.problem.startswith("not valid JSON"), line
            continue
        if isinstance(expected, dict) and isinstance(expected.get("text"), str):
            assert repr(item.record) == repr(expected), line  # repr: NaN != NaN, types must match
        else:
            assert item.record is None and item.problem, line
